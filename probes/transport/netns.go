package transport

import (
	"fmt"
	"os/exec"
	"runtime"
	"sync"

	"github.com/lvsdoctor/lvsdoctor/probes/agent"
	"github.com/lvsdoctor/lvsdoctor/probes/agent/ops"
	"github.com/vishvananda/netns"
)

// nsAgent is the agent process that serves every netns: host of this
// controller (`lvsdoctor agent --netns`, see ops.Namespaces): one process
// start instead of one per host, which is what let a lab of fifty real
// servers be checked in about the time of two.
type nsAgent struct {
	cmd    *exec.Cmd
	client *agent.Client
	refs   int
}

var nsAgents struct {
	mu sync.Mutex
	a  *nsAgent
}

// isolated, as startAgent's namespace, starts the agent in a new, empty
// network namespace of its own: not the controller's, so that a probe
// that opened a socket on the wrong thread could never send on this
// machine's network; and not one being checked, whose removal (lab down
// ends every process in a lab's namespaces) would take the agent of
// every other host with it.
const isolated = "\x00isolated"

// dialNetns gives a Conn to namespace name on the shared agent, starting
// it if none runs.
func dialNetns(spec, name string) (*Conn, error) {
	// Checked here too, so that a missing namespace is named before any
	// process starts.
	h, err := ops.OpenNetns(name)
	if err != nil {
		return nil, err
	}
	h.Close()
	nsAgents.mu.Lock()
	defer nsAgents.mu.Unlock()
	a := nsAgents.a
	if a == nil {
		cmd, cl, err := startAgent(isolated, "agent", "--netns")
		if err != nil {
			return nil, err
		}
		a = &nsAgent{cmd: cmd, client: cl}
		nsAgents.a = a
	}
	a.refs++
	return &Conn{Client: a.client.In(name), Spec: spec, closer: a.release}, nil
}

// release drops one host; the last one ends the process.
func (a *nsAgent) release() error {
	nsAgents.mu.Lock()
	a.refs--
	last := a.refs == 0
	if last && nsAgents.a == a {
		nsAgents.a = nil
	}
	nsAgents.mu.Unlock()
	if !last {
		return nil
	}
	a.client.Close()
	return waitAgent(a.cmd, "netns")
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
