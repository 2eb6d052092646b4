package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/lvsdoctor/lvsdoctor/probes/agent"
	"github.com/lvsdoctor/lvsdoctor/probes/internal/nsthread"
	"github.com/vishvananda/netns"
)

// Namespaces serves several network namespaces from one agent process
// (`lvsdoctor agent --netns`; the controller decides how many, see
// transport.hostsPerAgent). A Go process costs about 13 ms of CPU to
// start; fifty real servers in namespaces, each with its own agent, spent
// more on starting agents than on probing.
//
// Each request runs on an OS thread switched into its namespace
// (nsthread.Run), which is what a per-host agent gave for free: the
// probes open every socket (netlink, packet, ICMP, TCP) on the calling
// goroutine, and read /proc through thread-self, so all they touch is
// that namespace's. The thread stays there for the namespace's next
// request, never running anything else, until the namespace is released:
// no other goroutine ever runs in a namespace it did not ask for.
type Namespaces struct {
	mu    sync.Mutex
	hosts map[string]*nsHost
}

type nsHost struct {
	ns   netns.NsHandle
	ops  map[string]agent.Handler
	done func()
}

func NewNamespaces() *Namespaces { return &Namespaces{hosts: map[string]*nsHost{}} }

// Route is the agent.Router: the namespace's own session (its captures),
// opened at its first request and ended by agent.OpRelease.
func (n *Namespaces) Route(req agent.Request) (agent.Handler, error) {
	if req.NS == "" {
		return nil, errors.New("this agent serves network namespaces: the request names none")
	}
	if req.Op == agent.OpRelease {
		return func(context.Context, json.RawMessage) (any, error) {
			n.release(req.NS)
			return struct{}{}, nil
		}, nil
	}
	h, err := n.host(req.NS)
	if err != nil {
		return nil, err
	}
	op, ok := h.ops[req.Op]
	if !ok {
		return nil, fmt.Errorf("unknown operation %q", req.Op)
	}
	return func(ctx context.Context, raw json.RawMessage) (res any, err error) {
		if nerr := nsthread.Run(h.ns, func() { res, err = op(ctx, raw) }); nerr != nil {
			return nil, fmt.Errorf("network namespace %q: %w", req.NS, nerr)
		}
		return res, err
	}, nil
}

func (n *Namespaces) host(name string) (*nsHost, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if h := n.hosts[name]; h != nil {
		return h, nil
	}
	ns, err := OpenNetns(name)
	if err != nil {
		return nil, err
	}
	t, done := Table()
	h := &nsHost{ns: ns, ops: t, done: done}
	n.hosts[name] = h
	return h, nil
}

func (n *Namespaces) release(name string) {
	n.mu.Lock()
	h := n.hosts[name]
	delete(n.hosts, name)
	n.mu.Unlock()
	if h != nil {
		h.done()
		nsthread.Forget(h.ns)
		h.ns.Close()
	}
}

// Close ends every namespace's session (the controller went away).
func (n *Namespaces) Close() {
	n.mu.Lock()
	names := make([]string, 0, len(n.hosts))
	for name := range n.hosts {
		names = append(names, name)
	}
	n.mu.Unlock()
	for _, name := range names {
		n.release(name)
	}
}

// OpenNetns opens a namespace by its `ip netns` name, with the message an
// operator needs when that fails.
func OpenNetns(name string) (netns.NsHandle, error) {
	h, err := netns.GetFromName(name)
	if err == nil {
		return h, nil
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		return h, fmt.Errorf("network namespace %q does not exist (ip netns list)", name)
	case errors.Is(err, os.ErrPermission):
		return h, fmt.Errorf("network namespace %q: permission denied (needs CAP_SYS_ADMIN)", name)
	}
	return h, fmt.Errorf("network namespace %q: %w", name, err)
}
