package traceroute

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/lvsdoctor/lvsdoctor/probes/internal/nstest"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
)

func TestTraceThroughRouter(t *testing.T) {
	testenv.RequireRoot(t)
	n := nstest.NewRouted(t)
	var r obs.Trace
	start := time.Now()
	n.A.MustDo(t, func() error {
		r = Run(context.Background(), obs.TraceArgs{Src: n.AAddr, Dst: n.BAddr, MaxHops: 8, Timeout: 2 * time.Second})
		return nil
	})
	t.Logf("%s\n(took %v)", String(r), time.Since(start))
	if r.Error != "" {
		t.Fatal(r.Error)
	}
	if len(r.Hops) < 1 || r.Hops[0].Addr != n.RA || r.Hops[0].Type != 11 {
		t.Fatalf("hop 1 should be the router %s (time exceeded): %+v", n.RA, r.Hops)
	}
	if !r.Reached || len(r.Hops) != 2 || r.Hops[1].Addr != n.BAddr || r.Hops[1].Type != 3 || r.Hops[1].Code != 3 {
		t.Fatalf("want reached at hop 2 (port unreachable from %s): %+v", n.BAddr, r)
	}
}

func TestTraceConcurrent(t *testing.T) {
	testenv.RequireRoot(t)
	n := nstest.NewRouted(t)
	var wg sync.WaitGroup
	res := make([]obs.Trace, 2)
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = n.A.Do(func() error {
				res[i] = Run(context.Background(), obs.TraceArgs{Src: n.AAddr, Dst: n.BAddr, MaxHops: 3, Timeout: 2 * time.Second})
				return nil
			})
		}()
	}
	wg.Wait()
	for i, r := range res {
		t.Logf("%d: %s", i, String(r))
		if len(r.Hops) < 1 || r.Hops[0].Addr != n.RA {
			t.Errorf("trace %d: hop 1 should be %s: %+v", i, n.RA, r.Hops)
		}
	}
}

// TestTraceRetriesSilentHop: a router that drops its first time-exceeded
// message (as one out of ICMP budget does) is still the first hop, found
// by the next round of probes instead of a second's wait.
func TestTraceRetriesSilentHop(t *testing.T) {
	// One time-exceeded message is 76 bytes (IP, ICMP, the quoted IP and
	// UDP headers and the 20-byte payload): the quota lets the first one
	// match, and none after it.
	n, r, took := traceDropping(t, "icmp type time-exceeded quota until 100 bytes drop", 2*time.Second)
	if len(r.Hops) < 1 || r.Hops[0].Addr != n.RA {
		t.Fatalf("hop 1 should be the router %s, asked again: %+v", n.RA, r.Hops)
	}
	if !r.Reached {
		t.Fatalf("want reached: %+v", r)
	}
	if took > time.Second {
		t.Fatalf("took %v: the silent hop waited out the timeout", took)
	}
}

// TestTraceGivesUpOnSilentHop: a router that never answers (out of ICMP
// budget, or a firewall) costs the trace its retries and one settling
// wait, not the whole timeout; the destination's answer still ends it.
func TestTraceGivesUpOnSilentHop(t *testing.T) {
	_, r, took := traceDropping(t, "icmp type time-exceeded drop", 3*time.Second)
	if len(r.Hops) < 2 || r.Hops[0].Addr != "" || !r.Reached {
		t.Fatalf("want a silent first hop and the destination reached: %+v", r)
	}
	if want := Retries*RetryGap + SettleMin + 200*time.Millisecond; took > want {
		t.Fatalf("took %v, more than %v: the silent hop waited out the timeout", took, want)
	}
}

// traceDropping traces from A to B through a router whose output chain
// has the nftables rule, and says how long the trace took.
func traceDropping(t *testing.T, rule string, timeout time.Duration) (*nstest.Routed, obs.Trace, time.Duration) {
	t.Helper()
	testenv.RequireRoot(t)
	n := nstest.NewRouted(t)
	nftChain(t, n.R, "output", rule)
	var r obs.Trace
	start := time.Now()
	n.A.MustDo(t, func() error {
		r = Run(context.Background(), obs.TraceArgs{Src: n.AAddr, Dst: n.BAddr, MaxHops: 4, Timeout: timeout})
		return nil
	})
	took := time.Since(start)
	t.Logf("%s\n(took %v)", String(r), took)
	return n, r, took
}

// nftChain gives ns a chain on hook with the one rule, and returns how
// to read the packets its counter (if the rule has one) has seen.
func nftChain(t *testing.T, ns *nstest.NS, hook, rule string) (packets func() int) {
	t.Helper()
	nft := testenv.RequireCommand(t, "nft", "nftables")
	cmd := exec.Command("ip", "netns", "exec", ns.Name, nft, "-f", "-")
	cmd.Stdin = strings.NewReader("table ip lvspt {\n\tchain c {\n\t\ttype filter hook " + hook + " priority 0\n\t\t" + rule + "\n\t}\n}\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	return func() int {
		out, err := exec.Command("ip", "netns", "exec", ns.Name, nft, "list", "chain", "ip", "lvspt", "c").CombinedOutput()
		if err != nil {
			t.Fatalf("nft list: %v: %s", err, out)
		}
		f := strings.Fields(string(out))
		i := slices.Index(f, "packets")
		if i < 0 || i+1 >= len(f) {
			t.Fatalf("no counter in %s", out)
		}
		n, err := strconv.Atoi(f[i+1])
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
}

// The destination gets one probe on the usual path: the TTLs beyond it
// are never sent, so its ICMP budget (shared by every real server behind
// a masquerading director) is not spent on them.
func TestTraceSendsNoFurther(t *testing.T) {
	testenv.RequireRoot(t)
	n := nstest.NewRouted(t)
	probes := nftChain(t, n.B, "input", "udp dport 33434-33498 counter")
	var r obs.Trace
	n.A.MustDo(t, func() error {
		r = Run(context.Background(), obs.TraceArgs{Src: n.AAddr, Dst: n.BAddr, MaxHops: 8, Timeout: 2 * time.Second})
		return nil
	})
	t.Log(String(r))
	if !r.Reached || len(r.Hops) != 2 {
		t.Fatalf("want reached in 2 hops: %+v", r)
	}
	if got := probes(); got != 1 {
		t.Errorf("the destination got %d probes, want 1", got)
	}
}

// A path longer than Window is followed, Window TTLs at a time.
func TestTraceLongerPath(t *testing.T) {
	testenv.RequireRoot(t)
	const routers = 4
	ns := []*nstest.NS{nstest.New(t)}
	addr := func(link, side int) string { return fmt.Sprintf("198.18.%d.%d", link, side) }
	for i := 1; i <= routers+1; i++ {
		ns = append(ns, nstest.New(t))
		// link i joins node i-1 (.1) and node i (.2) on 198.18.i.0/24.
		nstest.Veth(t, ns[i-1], fmt.Sprintf("r%d", i), addr(i, 1)+"/24", ns[i], fmt.Sprintf("l%d", i), addr(i, 2)+"/24")
	}
	route := func(n *nstest.NS, dst, gw string) {
		r := &netlink.Route{Gw: net.ParseIP(gw)}
		if dst != "" {
			_, r.Dst, _ = net.ParseCIDR(dst)
		}
		if err := n.NL().RouteAdd(r); err != nil {
			t.Fatalf("route %s via %s in %s: %v", dst, gw, n.Name, err)
		}
	}
	route(ns[0], "", addr(1, 2))
	for i := 1; i <= routers; i++ {
		ns[i].Sysctl(t, "net.ipv4.ip_forward", "1")
		if i < routers {
			route(ns[i], "", addr(i+1, 2))
		}
		if i > 1 {
			route(ns[i], "198.18.1.0/24", addr(i, 1))
		}
	}
	route(ns[routers+1], "", addr(routers+1, 1))
	src, dst := addr(1, 1), addr(routers+1, 2)
	var r obs.Trace
	ns[0].MustDo(t, func() error {
		r = Run(context.Background(), obs.TraceArgs{Src: src, Dst: dst, MaxHops: 8, Timeout: 2 * time.Second})
		return nil
	})
	t.Log(String(r))
	if !r.Reached || len(r.Hops) != routers+1 {
		t.Fatalf("want reached in %d hops: %+v", routers+1, r)
	}
	for i, h := range r.Hops {
		if want := addr(i+1, 2); h.Addr != want {
			t.Errorf("hop %d: %s, want %s", i+1, h.Addr, want)
		}
	}
}

// A destination that never answers (out of ICMP budget for this peer, or
// a firewall) is waited for as long as tailWait gives the answer before
// it, not the timeout: Q.2 needs the first hop, which did answer.
func TestTraceSilentDestination(t *testing.T) {
	testenv.RequireRoot(t)
	n := nstest.NewRouted(t)
	nftChain(t, n.B, "input", "udp dport 33434-33498 drop")
	var r obs.Trace
	start := time.Now()
	n.A.MustDo(t, func() error {
		r = Run(context.Background(), obs.TraceArgs{Src: n.AAddr, Dst: n.BAddr, MaxHops: 8, Timeout: 3 * time.Second})
		return nil
	})
	took := time.Since(start)
	t.Logf("%s\n(took %v)", String(r), took)
	if r.Reached || len(r.Hops) != Window || r.Hops[0].Addr != n.RA || r.Hops[1].Addr != "" {
		t.Fatalf("want the router, then silence, and no more probes: %+v", r)
	}
	if took > time.Second {
		t.Fatalf("took %v: the silent destination waited out the timeout", took)
	}
}

func TestTailWait(t *testing.T) {
	for _, c := range []struct{ rtt, want time.Duration }{
		{0, TailMin},
		{time.Millisecond, TailMin},
		{20 * time.Millisecond, 200 * time.Millisecond},
	} {
		if got := tailWait(c.rtt); got != c.want {
			t.Errorf("tailWait(%v) = %v, want %v", c.rtt, got, c.want)
		}
	}
}

func TestSilent(t *testing.T) {
	hop := func(addrs ...string) []obs.Hop {
		h := make([]obs.Hop, len(addrs))
		for i, a := range addrs {
			h[i] = obs.Hop{TTL: i + 1, Addr: a}
		}
		return h
	}
	for _, c := range []struct {
		hops []obs.Hop
		end  int
		want []int
	}{
		{hop("", "", "", ""), 0, []int{1}},             // nothing yet: the first hop
		{hop("", "b", "b", ""), 2, []int{1}},           // the destination answered, the router not
		{hop("r", "", "", ""), 0, nil},                 // only the destination is silent: left alone
		{hop("r", "", "c", "c"), 3, []int{2}},          // a silent router in the middle
		{hop("", "", "x", "", "x"), 0, []int{1, 2, 4}}, // no end known: everything in front of x
		{hop("r", "s", "b", "b"), 3, nil},              // complete
	} {
		if got := silent(c.hops, c.end); !slices.Equal(got, c.want) {
			t.Errorf("silent(%v, %d) = %v, want %v", c.hops, c.end, got, c.want)
		}
	}
}

func TestTraceNoRoute(t *testing.T) {
	testenv.RequireRoot(t)
	p := nstest.NewPair(t)
	var r obs.Trace
	p.A.MustDo(t, func() error {
		r = Run(context.Background(), obs.TraceArgs{Src: p.AAddr, Dst: "203.0.113.5", Timeout: 300 * time.Millisecond})
		return nil
	})
	if r.Error == "" || r.Reached {
		t.Fatalf("want a send error (no route), got %+v", r)
	}
}

func TestQuotedProbe(t *testing.T) {
	q := []byte{0x45, 0, 0, 48, 0, 0, 0, 0, 1, 17, 0, 0, 198, 18, 1, 2, 198, 18, 2, 2,
		0x9c, 0x40, 0x82, 0x9c, 0, 28, 0, 0}
	// sport 40000, dport 33436 -> ttl 2
	if ttl, ok := quotedProbe(q, []byte{198, 18, 2, 2}, 40000, 8); !ok || ttl != 2 {
		t.Fatalf("got %d %v", ttl, ok)
	}
	if _, ok := quotedProbe(q, []byte{198, 18, 2, 2}, 40001, 8); ok {
		t.Fatal("matched another socket's probe")
	}
	if _, ok := quotedProbe(q[:24], []byte{198, 18, 2, 2}, 40000, 8); ok {
		t.Fatal("matched a short quote")
	}
}

// arrival reads the kernel's receive time: a datagram sent to itself on
// loopback arrived between its sending and its reading.
func TestArrival(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	if _, err := c.WriteTo([]byte("x"), c.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	oob := make([]byte, 64)
	_, oobn, _, _, err := c.ReadMsgUDP(make([]byte, 8), oob)
	if err != nil {
		t.Fatal(err)
	}
	read := time.Now()
	at, ok := arrival(oob[:oobn])
	if !ok {
		t.Fatalf("no timestamp in %x", oob[:oobn])
	}
	if at.Before(before.Add(-time.Millisecond)) || !at.Before(read.Add(-10*time.Millisecond)) {
		t.Errorf("arrived %v, sent %v, read %v: not the kernel's arrival", at, before, read)
	}
	if _, ok := arrival(nil); ok {
		t.Error("a timestamp out of nothing")
	}
}

func TestStripIPv4(t *testing.T) {
	hdr := make([]byte, 24)
	hdr[0] = 0x46 // version 4, 24-byte header
	b := append(hdr, 11, 0)
	if got := stripIPv4(b); len(got) != 2 || got[0] != 11 {
		t.Errorf("stripIPv4 = %v", got)
	}
	if got := stripIPv4([]byte{11, 0}); len(got) != 2 {
		t.Errorf("a message without a header lost bytes: %v", got)
	}
}
