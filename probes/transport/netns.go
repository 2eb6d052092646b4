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

// dialNetns gives a Conn to namespace name on the shared agent, starting
// it if none runs. The agent starts inside the first namespace asked for,
// not the controller's: a probe that opened a socket on the wrong thread
// would then send its traffic in a namespace being checked, never on the
// network of the machine lvsdoctor runs on.
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
		cmd, cl, err := startAgent(name, "agent", "--netns")
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
