// Package agent is the wire between the controller and the lvsdoctor
// process that runs the probes on a host. The protocol is newline-delimited
// JSON on the agent's stdin (requests) and stdout (responses), identical for
// every transport (netns, local, ssh): a transport only has to give the
// controller a pipe to `lvsdoctor agent` on the target.
//
// Requests carry an ID and may be answered out of order, so a slow probe
// (a capture, a traceroute waiting for silence) never holds up a quick one.
package agent

import "encoding/json"

// Version changes when a request or response changes shape; the controller
// refuses an agent of another version instead of misreading it.
const Version = 2

// Operation names.
const (
	OpHello        = "hello"
	OpFacts        = "facts"
	OpPing         = "ping"
	OpTrace        = "trace"
	OpRouteGet     = "routeget"
	OpCaptureStart = "capture.start"
	OpCaptureStop  = "capture.stop"
	OpConnect      = "connect"
	// OpRelease ends one namespace's session on an agent that serves
	// several (`lvsdoctor agent --netns`): its captures stop, and the
	// others go on.
	OpRelease = "release"
)

type Request struct {
	ID   uint64          `json:"id"`
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
	// NS names the network namespace (as in `ip netns`) the request runs
	// in, on an agent that serves several; an agent for one host refuses
	// a request that names one rather than run it in the wrong place.
	NS string `json:"ns,omitempty"`
}

type Response struct {
	ID     uint64          `json:"id"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// Hello is the answer to OpHello, the first request on every connection.
type Hello struct {
	Version  int    `json:"version"`
	PID      int    `json:"pid"`
	Hostname string `json:"hostname"`
	// NetNS identifies the network namespace the agent serves (the inode
	// of /proc/thread-self/ns/net where it runs the host's requests), so
	// a controller can tell two hosts that are really one apart from two
	// that differ.
	NetNS uint64 `json:"netns"`
	// Missing lists capabilities the agent lacks (CAP_NET_ADMIN,
	// CAP_NET_RAW): probes that need them will fail, and saying so up
	// front gives one clear message instead of many deep ones.
	Missing []string `json:"missing,omitempty"`
}
