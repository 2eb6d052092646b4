// Package traceroute is `traceroute -n -s Src Dst` with every TTL sent at
// once: one UDP probe per TTL to port BasePort+TTL from a socket bound to
// Src, the answers read from a raw ICMP socket and matched by the quoted
// IP/UDP header (destination, our source port, and the destination port
// that names the TTL). A hop that stays silent while one beyond it
// answered is asked again, like traceroute's further queries per hop.
package traceroute

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// Defaults for zero fields of obs.TraceArgs, and the port base.
const (
	DefaultMaxHops = 8
	DefaultTimeout = time.Second
	BasePort       = 33434
	maxMaxHops     = 64
	// SettleMin is the least time waited for further answers after the
	// latest one, once the first hop has answered.
	SettleMin = 150 * time.Millisecond
	// RetryGap apart, up to Retries times, the silent hops in front of
	// the furthest answer are probed again. A router's ICMP errors share
	// one budget per namespace (net.ipv4.icmp_msgs_burst, 50, refilled
	// at icmp_msgs_per_sec, 1000/s): fifty real servers tracing through
	// their director at once empty it, and the first hops it could not
	// answer read as silent for the whole timeout. RetryGap refills it.
	RetryGap = 50 * time.Millisecond
	Retries  = 2
)

// Run traces the path to a.Dst. It waits at most a.Timeout once for all
// probes (or until ctx ends). Sockets are opened on the calling goroutine.
func Run(ctx context.Context, a obs.TraceArgs) obs.Trace {
	res := obs.Trace{Src: a.Src, Dst: a.Dst}
	if a.MaxHops <= 0 {
		a.MaxHops = DefaultMaxHops
	}
	if a.MaxHops > maxMaxHops {
		a.MaxHops = maxMaxHops
	}
	if a.Timeout <= 0 {
		a.Timeout = DefaultTimeout
	}
	dst := net.ParseIP(a.Dst).To4()
	if dst == nil {
		res.Error = "invalid IPv4 destination: " + a.Dst
		return res
	}
	bind := "0.0.0.0"
	if a.Src != "" {
		s := net.ParseIP(a.Src).To4()
		if s == nil {
			res.Error = "invalid IPv4 source: " + a.Src
			return res
		}
		bind = s.String()
	}

	// The ICMP listener first, so no answer arrives before it exists.
	ic, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		res.Error = "icmp socket: " + err.Error()
		return res
	}
	defer ic.Close()
	uc, err := net.ListenPacket("udp4", net.JoinHostPort(bind, "0"))
	if err != nil {
		res.Error = "udp socket: " + err.Error()
		return res
	}
	defer uc.Close()
	sport := uc.LocalAddr().(*net.UDPAddr).Port
	pc := ipv4.NewPacketConn(uc)

	deadline := time.Now().Add(a.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	hops := make([]obs.Hop, a.MaxHops)
	sent := make([]time.Time, a.MaxHops)
	payload := []byte("lvsdoctor-traceroute")
	send := func(ttl int) error {
		if err := pc.SetTTL(ttl); err != nil {
			return fmt.Errorf("set ttl: %w", err)
		}
		sent[ttl-1] = time.Now()
		if _, err := uc.WriteTo(payload, &net.UDPAddr{IP: dst, Port: BasePort + ttl}); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		return nil
	}
	for i := range hops {
		hops[i].TTL = i + 1
		if err := send(i + 1); err != nil {
			// ENETUNREACH and friends: the path ends here, on this host.
			res.Error = err.Error()
			res.Hops = hops[:0]
			return res
		}
	}

	// Stop reading when ctx ends, too: the deadline set here after a
	// check of ctx, or the one this sets once ctx ended, whichever is
	// later, holds.
	stop := context.AfterFunc(ctx, func() { _ = ic.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	end := 0           // TTL of the answer that ended the path (0: none yet)
	until := deadline  // moved closer once the first hop answered
	retries := Retries // rounds of probes left for silent hops
	retryAt := time.Now().Add(RetryGap)
	buf := make([]byte, 1500)
	for !complete(hops, end) {
		wait := until
		if retries > 0 && retryAt.Before(wait) {
			wait = retryAt
		}
		_ = ic.SetReadDeadline(wait)
		if ctx.Err() != nil {
			break
		}
		n, peer, err := ic.ReadFrom(buf)
		now := time.Now()
		if err != nil {
			if ctx.Err() != nil || !errors.Is(err, os.ErrDeadlineExceeded) || now.Before(wait) || !wait.Before(until) {
				break // ctx ended, the socket failed, or the wait is over
			}
			retries--
			retryAt = now.Add(RetryGap)
			for _, ttl := range silent(hops, end) {
				if send(ttl) != nil {
					retries = 0
					break
				}
			}
			if retries == 0 {
				// Asked three times: what still has not answered is
				// waited for as long as a late answer is, not the whole
				// timeout (a director out of ICMP budget for this real
				// server stays silent for seconds).
				if d := now.Add(SettleMin); d.Before(until) {
					until = d
				}
			}
			continue
		}
		typ, code, ttl, ok := match(buf[:n], dst, sport, a.MaxHops)
		if !ok || hops[ttl-1].Addr != "" {
			continue
		}
		h := &hops[ttl-1]
		h.Addr = peerIP(peer)
		h.RTT = now.Sub(sent[ttl-1])
		h.Type, h.Code = typ, code
		if typ == 3 && (end == 0 || ttl < end) {
			end = ttl
		}
		// Once the first hop has answered, wait only a while for the rest:
		// the kernel rate-limits ICMP errors per peer (burst 6), so behind
		// a masquerading director the final hop's answers of several
		// traceroutes are often never sent, and waiting the whole timeout
		// for them would cost every healthy check a second.
		if hops[0].Addr != "" {
			if d := now.Add(max(SettleMin, 2*h.RTT)); d.Before(deadline) {
				until = d
			}
		}
	}
	if end > 0 {
		hops = hops[:end]
		last := hops[end-1]
		// Port unreachable (or any answer from the destination itself)
		// means the probe got there; host/net unreachable from a router
		// ends the path without reaching it.
		res.Reached = last.Code == 3 || last.Addr == dst.String()
	}
	res.Hops = hops
	return res
}

// silent lists the TTLs worth probing again: the silent hops in front of
// the furthest answer, or the first hop while nothing answered. A silent
// hop beyond every answer is left alone: behind a masquerading director
// that is the destination, whose answers to one peer are limited to a
// burst of six a second, which no retry soon after gets past.
func silent(hops []obs.Hop, end int) []int {
	far := 0 // the furthest TTL that answered, up to the end of the path
	for i, h := range hops {
		if h.Addr != "" {
			far = i + 1
		}
	}
	if end > 0 && end < far {
		far = end
	}
	if far == 0 {
		return []int{1}
	}
	var ttls []int
	for ttl := 1; ttl < far; ttl++ {
		if hops[ttl-1].Addr == "" {
			ttls = append(ttls, ttl)
		}
	}
	return ttls
}

// complete reports whether every hop up to the end of the path answered.
func complete(hops []obs.Hop, end int) bool {
	n := len(hops)
	if end > 0 {
		n = end
	}
	for i := 0; i < n; i++ {
		if hops[i].Addr == "" {
			return false
		}
	}
	return true
}

func peerIP(a net.Addr) string {
	switch v := a.(type) {
	case *net.IPAddr:
		return v.IP.String()
	case *net.UDPAddr:
		return v.IP.String()
	}
	return a.String()
}

// match decodes an ICMP message (without IP header, as the raw socket
// returns it) and reports the TTL of the probe it quotes.
func match(b []byte, dst net.IP, sport, maxHops int) (typ, code, ttl int, ok bool) {
	m, err := icmp.ParseMessage(1, b)
	if err != nil {
		return
	}
	var data []byte
	switch body := m.Body.(type) {
	case *icmp.TimeExceeded:
		data = body.Data
	case *icmp.DstUnreach:
		data = body.Data
	default:
		return
	}
	t, ok1 := m.Type.(ipv4.ICMPType)
	if !ok1 {
		return
	}
	ttl, ok = quotedProbe(data, dst, sport, maxHops)
	return int(t), m.Code, ttl, ok
}

// quotedProbe checks a quoted IPv4+UDP header against our probes.
func quotedProbe(q []byte, dst net.IP, sport, maxHops int) (int, bool) {
	if len(q) < 20 || q[0]>>4 != 4 {
		return 0, false
	}
	ihl := int(q[0]&0x0f) * 4
	if ihl < 20 || len(q) < ihl+8 || q[9] != 17 {
		return 0, false
	}
	if !net.IP(q[16:20]).Equal(dst) {
		return 0, false
	}
	u := q[ihl:]
	if int(binary.BigEndian.Uint16(u[0:2])) != sport {
		return 0, false
	}
	ttl := int(binary.BigEndian.Uint16(u[2:4])) - BasePort
	if ttl < 1 || ttl > maxHops {
		return 0, false
	}
	return ttl, true
}

// String renders a trace like traceroute -n, for logs.
func String(t obs.Trace) string {
	s := fmt.Sprintf("traceroute to %s from %s", t.Dst, t.Src)
	for _, h := range t.Hops {
		if h.Addr == "" {
			s += fmt.Sprintf("\n%2d  *", h.TTL)
			continue
		}
		s += fmt.Sprintf("\n%2d  %s  %v  (%d/%d)", h.TTL, h.Addr, h.RTT, h.Type, h.Code)
	}
	if t.Reached {
		s += "\nreached"
	}
	return s
}
