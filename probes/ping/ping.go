// Package ping runs `ping -n -c Count -I Src Dst` with pro-bing in
// privileged (raw ICMP socket) mode, in the process's own namespace.
package ping

import (
	"context"
	"errors"
	"net"
	"time"

	probing "github.com/prometheus-community/pro-bing"

	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// Defaults for zero fields of obs.PingArgs.
const (
	DefaultCount   = 1
	DefaultTimeout = time.Second
	// Interval between echo requests: small, so Count 3 takes no 3 s.
	Interval = 50 * time.Millisecond
)

// Run pings a.Dst and never blocks past a.Timeout (or ctx). The socket is
// opened on the calling goroutine.
func Run(ctx context.Context, a obs.PingArgs) obs.Ping {
	res := obs.Ping{Src: a.Src, Dst: a.Dst}
	if a.Count <= 0 {
		a.Count = DefaultCount
	}
	if a.Timeout <= 0 {
		a.Timeout = DefaultTimeout
	}
	dst := net.ParseIP(a.Dst)
	if dst == nil || dst.To4() == nil {
		res.Error = "invalid IPv4 destination: " + a.Dst
		return res
	}
	if a.Src != "" {
		src := net.ParseIP(a.Src)
		if src == nil || src.To4() == nil {
			res.Error = "invalid IPv4 source: " + a.Src
			return res
		}
	}
	p := probing.New(a.Dst)
	p.SetPrivileged(true)
	p.SetNetwork("ip4")
	p.SetIPAddr(&net.IPAddr{IP: dst})
	p.Count = a.Count
	p.Timeout = a.Timeout
	p.Interval = Interval
	p.Source = a.Src
	p.RecordRtts = true
	ctx, cancel := context.WithTimeout(ctx, a.Timeout+100*time.Millisecond)
	defer cancel()
	err := p.RunWithContext(ctx)
	st := p.Statistics()
	res.Sent = st.PacketsSent
	res.Received = st.PacketsRecv
	if len(st.Rtts) > 0 {
		res.RTTs = append([]time.Duration(nil), st.Rtts...)
	}
	// Our own deadline is the normal end of a ping without replies.
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		res.Error = err.Error()
	}
	return res
}
