// Package traceroute is `traceroute -n -s Src Dst` with the TTLs sent
// Window at a time, the next ones as soon as the last answers: one UDP
// probe per TTL to port BasePort+TTL from a socket bound to Src, the
// answers read from a raw ICMP socket and matched by the quoted IP/UDP
// header (destination, our source port, and the destination port that
// names the TTL). A hop that stays silent while one beyond it answered is
// asked again, like traceroute's further queries per hop; one beyond the
// furthest answer is waited for as traceroute's -w NEAR does, a multiple
// of that answer's round trip.
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
	"golang.org/x/sys/unix"

	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// Defaults for zero fields of obs.TraceArgs, and the port base.
const (
	DefaultMaxHops = 8
	DefaultTimeout = time.Second
	BasePort       = 33434
	maxMaxHops     = 64
	// Window TTLs are sent at once, the next Window as soon as the last
	// of them answers from a router. Every probe beyond the destination
	// costs it an ICMP error, and the destination behind a masquerading
	// director answers all the real servers as one peer: a burst of six,
	// then one a second (net.ipv4.icmp_ratelimit). Eight TTLs at once
	// spent that on the first real server's trace; two spend one per
	// real server on the usual two-hop path, the director and the client.
	Window = 2
	// A silent hop beyond the furthest answer is waited for TailNear
	// times that answer's round trip (traceroute's -w NEAR), at least
	// TailMin: past a director that answered in a millisecond, a client
	// out of ICMP budget for it cost every trace the full SettleMin.
	TailNear = 10
	TailMin  = 30 * time.Millisecond
	// SettleMin is waited, after the last round of retries, for the
	// silent hops in front of the furthest answer.
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

// tailWait is how long the hops beyond an answer that took rtt are
// waited for.
func tailWait(rtt time.Duration) time.Duration { return max(TailMin, TailNear*rtt) }

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
	ic, err := listenICMP()
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
	}
	top := 0 // the highest TTL sent
	more := func() error {
		for n := min(top+Window, a.MaxHops); top < n; top++ {
			if err := send(top + 1); err != nil {
				return err // top: the last TTL that did leave
			}
		}
		return nil
	}
	if err := more(); err != nil {
		// ENETUNREACH and friends: the path ends here, on this host.
		res.Error = err.Error()
		res.Hops = hops[:0]
		return res
	}

	// Stop reading when ctx ends, too: the deadline set here after a
	// check of ctx, or the one this sets once ctx ended, whichever is
	// later, holds.
	stop := context.AfterFunc(ctx, func() { _ = ic.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	end := 0              // TTL of the answer that ended the path (0: none yet)
	far := 0              // the furthest TTL that answered
	var tailAt time.Time  // when the silent hops beyond far are given up
	var frontAt time.Time // when the silent hops in front of far are, once asked Retries more times
	retries := Retries    // rounds of probes left for silent hops in front
	retryAt := time.Now().Add(RetryGap)
	buf, oob := make([]byte, 1500), make([]byte, 64)
	for !complete(hops[:top], end) {
		front := silent(hops[:top], end)
		var wait time.Time
		switch {
		case len(front) > 0 && retries > 0:
			wait = retryAt
		case len(front) > 0:
			wait = frontAt
			if tailAt.After(wait) {
				wait = tailAt
			}
		default:
			wait = tailAt
		}
		if wait.After(deadline) {
			wait = deadline
		}
		_ = ic.SetReadDeadline(wait)
		if ctx.Err() != nil {
			break
		}
		n, oobn, _, peer, err := ic.ReadMsgIP(buf, oob)
		now := time.Now()
		if err != nil {
			if ctx.Err() != nil || !errors.Is(err, os.ErrDeadlineExceeded) || now.Before(wait) ||
				len(front) == 0 || retries == 0 || !wait.Equal(retryAt) {
				break // ctx ended, the socket failed, or the wait is over
			}
			retries--
			retryAt = now.Add(RetryGap)
			for _, ttl := range front {
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
				frontAt = now.Add(SettleMin)
			}
			continue
		}
		typ, code, ttl, ok := match(stripIPv4(buf[:n]), dst, sport, top)
		if !ok || hops[ttl-1].Addr != "" {
			continue
		}
		h := &hops[ttl-1]
		h.Addr = peerIP(peer)
		h.RTT = now.Sub(sent[ttl-1])
		if at, ok := arrival(oob[:oobn]); ok && at.After(sent[ttl-1]) && at.Before(now) {
			h.RTT = at.Sub(sent[ttl-1])
		}
		h.Type, h.Code = typ, code
		if typ == 3 && (end == 0 || ttl < end) {
			end = ttl
		}
		if ttl > far {
			far = ttl
			tailAt = now.Add(tailWait(h.RTT))
		}
		// A router at the last TTL sent: the path goes on, so do the
		// probes.
		if end == 0 && ttl == top && top < a.MaxHops {
			if more() != nil {
				break
			}
		}
	}
	hops = hops[:top]
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

// listenICMP opens the raw ICMP socket with the kernel's receive
// timestamps on: a round trip measured when this process gets to read the
// answer is the time a busy machine took to schedule it, and tailWait
// multiplies it (fifty real servers on two cores read their first hops'
// answers tens of milliseconds late).
func listenICMP() (*net.IPConn, error) {
	c, err := net.ListenIP("ip4:icmp", &net.IPAddr{IP: net.IPv4zero})
	if err != nil {
		return nil, err
	}
	if rc, err := c.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		})
	}
	return c, nil
}

// arrival is the kernel's receive time in a message's control data
// (SCM_TIMESTAMPNS).
func arrival(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_TIMESTAMPNS {
			continue
		}
		switch d := m.Data; len(d) {
		case 16: // struct timespec of 64-bit longs
			return time.Unix(int64(binary.NativeEndian.Uint64(d)), int64(binary.NativeEndian.Uint64(d[8:]))), true
		case 8:
			return time.Unix(int64(int32(binary.NativeEndian.Uint32(d))), int64(int32(binary.NativeEndian.Uint32(d[4:])))), true
		}
	}
	return time.Time{}, false
}

// stripIPv4 drops the IPv4 header a raw socket's message starts with.
func stripIPv4(b []byte) []byte {
	if len(b) < 20 || b[0]>>4 != 4 {
		return b
	}
	if l := int(b[0]&0x0f) * 4; l >= 20 && l <= len(b) {
		return b[l:]
	}
	return b
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
