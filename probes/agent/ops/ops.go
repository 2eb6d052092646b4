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

	"github.com/lvsdoctor/lvsdoctor/probes/agent"
	"github.com/lvsdoctor/lvsdoctor/probes/caps"
	"github.com/lvsdoctor/lvsdoctor/probes/capture"
	"github.com/lvsdoctor/lvsdoctor/probes/connect"
	"github.com/lvsdoctor/lvsdoctor/probes/facts"
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
	t := map[string]agent.Handler{
		agent.OpHello:        func(context.Context, json.RawMessage) (any, error) { return hello(), nil },
		agent.OpFacts:        typed(facts.CollectWith),
		agent.OpPing:         typed(ping.Run),
		agent.OpTrace:        typed(traceroute.Run),
		agent.OpRouteGet:     typed(routeget.Run),
		agent.OpConnect:      typed(connect.Run),
		agent.OpCaptureStart: typedErr(cm.Start),
		agent.OpCaptureStop:  typedErr(cm.Stop),
	}
	return t, cm.Close
}

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
