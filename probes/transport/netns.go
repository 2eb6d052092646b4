package transport

import (
	"fmt"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/lvsdoctor/lvsdoctor/probes/agent"
	"github.com/lvsdoctor/lvsdoctor/probes/agent/ops"
	"github.com/vishvananda/netns"
)

// nsAgent is an agent process that serves netns: hosts of this controller
// (`lvsdoctor agent --netns`, see ops.Namespaces), up to AgentLoad real
// servers' worth of them at once: a handful of process starts instead of
// one per host, which is what let a lab of fifty real servers be checked
// in about three times the time of two, and each process still holds
// only a few hosts' captures and facts.
type nsAgent struct {
	cmd    *exec.Cmd
	client *agent.Client
	// started is closed once the process is started (or failed to, err):
	// started outside the lock, so that the agents of a big cluster start
	// side by side, not one after another (seven process starts with a
	// lock held were 40 ms of a fifty-server check).
	started chan struct{}
	err     error
	refs    int      // hosts being served
	load    int      // their weights (Options.Weight)
	hosts   []string // every namespace served, for the benchmark's stats
}

// AgentLoad bounds the weight of the hosts one agent process serves at
// once (a host of this weight gets a process of its own). An agent is
// some 15 MiB before its first host (most of it the binary's own pages),
// and a real server with its capture ring adds about 0.7: eighteen keep
// it within its budget of 32 MiB with room for the garbage collector's
// pace (fifty real servers: four agents, where eight hosts an agent made
// seven, and a tenth more CPU).
const AgentLoad = 18

var nsAgents struct {
	mu   sync.Mutex
	list []*nsAgent
}

// isolated, as startAgent's namespace, starts the agent in a new, empty
// network namespace of its own: not the controller's, so that a probe
// that opened a socket on the wrong thread could never send on this
// machine's network; and not one being checked, whose removal (lab down
// ends every process in a lab's namespaces) would take the agent of
// every other host with it.
const isolated = "\x00isolated"

// dialNetns gives a Conn to namespace name on a shared agent, starting
// one if none has room.
func dialNetns(spec, name string, weight int) (*Conn, error) {
	// Checked here too, so that a missing namespace is named before any
	// process starts.
	h, err := ops.OpenNetns(name)
	if err != nil {
		return nil, err
	}
	h.Close()
	nsAgents.mu.Lock()
	var a *nsAgent
	for _, x := range nsAgents.list {
		if x.load+weight <= AgentLoad {
			a = x
			break
		}
	}
	start := a == nil
	if start {
		a = &nsAgent{started: make(chan struct{})}
		nsAgents.list = append(nsAgents.list, a)
	}
	a.refs++
	a.load += weight
	a.hosts = append(a.hosts, name)
	nsAgents.mu.Unlock()
	if start {
		a.cmd, a.client, a.err = startAgent(isolated, "agent", "--netns")
		close(a.started)
	}
	<-a.started
	if a.err != nil {
		// Every host that was to share it hears why; the next dial
		// starts another.
		nsAgents.mu.Lock()
		a.refs--
		a.load -= weight
		nsAgents.list = slices.DeleteFunc(nsAgents.list, func(x *nsAgent) bool { return x == a })
		nsAgents.mu.Unlock()
		return nil, a.err
	}
	return &Conn{Client: a.client.In(name), Spec: spec, closer: func() error { return a.release(weight) }}, nil
}

// release drops one host; the last one ends the process.
func (a *nsAgent) release(weight int) error {
	nsAgents.mu.Lock()
	a.refs--
	a.load -= weight
	last := a.refs == 0
	if last {
		nsAgents.list = slices.DeleteFunc(nsAgents.list, func(x *nsAgent) bool { return x == a })
	}
	nsAgents.mu.Unlock()
	if !last {
		return nil
	}
	a.client.Close()
	return waitAgent(a.cmd, "netns:"+strings.Join(a.hosts, ","))
}

// startInNetns starts cmd from a thread switched into the namespace: a
// child inherits its parent thread's namespace, so the agent runs there
// without `ip netns exec` and without touching this process's namespace.
func startInNetns(name string, cmd *exec.Cmd) error {
	target, err := ops.OpenNetns(name)
	if err != nil {
		return err
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering network namespace %q: %w (needs CAP_SYS_ADMIN)", name, err)
			return
		}
		err = cmd.Start()
		if netns.Set(orig) == nil {
			// Only a thread back in its own namespace may serve other
			// goroutines; a failed one stays locked and dies with this one.
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}
