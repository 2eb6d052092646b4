// Package ops is the agent's registry: which probe answers which
// operation. It is separate from package agent so that the wire protocol
// does not depend on the probes.
package ops

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/lvsdoctor/lvsdoctor/probes/agent"
	"github.com/lvsdoctor/lvsdoctor/probes/caps"
	"github.com/lvsdoctor/lvsdoctor/probes/capture"
	"github.com/lvsdoctor/lvsdoctor/probes/connect"
	"github.com/lvsdoctor/lvsdoctor/probes/facts"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
	"github.com/lvsdoctor/lvsdoctor/probes/ping"
	"github.com/lvsdoctor/lvsdoctor/probes/routeget"
	"github.com/lvsdoctor/lvsdoctor/probes/traceroute"
)

// typed adapts a probe func(ctx, Args) Result to an agent.Handler.
func typed[A, R any](fn func(context.Context, A) R) agent.Handler {
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		var a A
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &a); err != nil {
				return nil, err
			}
		}
		return fn(ctx, a), nil
	}
}

func typedErr[A, R any](fn func(context.Context, A) (R, error)) agent.Handler {
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		var a A
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &a); err != nil {
				return nil, err
			}
		}
		return fn(ctx, a)
	}
}

// Table returns the operations of one agent session and a func to call at
// its end (it stops captures still running).
func Table() (map[string]agent.Handler, func()) {
	cm := capture.NewManager()
	nl := &routeHandle{}
	t := map[string]agent.Handler{
		agent.OpHello: func(context.Context, json.RawMessage) (any, error) { return hello(), nil },
		agent.OpFacts: typed(func(ctx context.Context, a obs.FactsArgs) obs.Facts {
			return facts.CollectOn(ctx, nl.get(), a)
		}),
		agent.OpPing:  typed(ping.Run),
		agent.OpTrace: typed(traceroute.Run),
		agent.OpRouteGet: typed(func(ctx context.Context, a obs.RouteGetArgs) obs.RouteGet {
			return routeget.RunOn(ctx, nl.get(), a)
		}),
		agent.OpConnect:      typed(connect.Run),
		agent.OpCaptureStart: typedErr(cm.Start),
		agent.OpCaptureStop:  typedErr(cm.Stop),
	}
	return t, func() { cm.Close(); nl.close() }
}

// routeHandle is one route-netlink socket for all of a host's facts and
// route lookups, opened by the first of them in the host's namespace (the
// thread an operation runs on is in it): the netlink package's own
// functions open and close a socket per request, some seven of them per
// real server and check.
type routeHandle struct {
	mu sync.Mutex
	h  *netlink.Handle
}

// get is the handle, or nil (each caller opens its own) where none opens.
func (r *routeHandle) get() *netlink.Handle {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.h == nil {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return nil
		}
		// Requests on a shared socket wait for the kernel without the
		// timeout the package gives its own.
		_ = h.SetSocketTimeout(routeTimeout)
		r.h = h
	}
	return r.h
}

func (r *routeHandle) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.h != nil {
		r.h.Close()
		r.h = nil
	}
}

// routeTimeout bounds a route-netlink request on a host's handle.
const routeTimeout = 10 * time.Second

func hello() agent.Hello {
	h := agent.Hello{Version: agent.Version, PID: os.Getpid()}
	h.Hostname, _ = os.Hostname()
	h.NetNS = netnsInode()
	h.Missing = caps.Missing(caps.NetAdmin, caps.NetRaw)
	return h
}

// netnsInode reads the inode of the calling thread's network namespace,
// which is the host's also in an agent that serves several.
func netnsInode() uint64 {
	l, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		return 0
	}
	// "net:[4026531840]"
	l = strings.TrimSuffix(strings.TrimPrefix(l, "net:["), "]")
	n, _ := strconv.ParseUint(l, 10, 64)
	return n
}
