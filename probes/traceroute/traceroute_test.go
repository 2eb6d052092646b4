package traceroute

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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
	nft := testenv.RequireCommand(t, "nft", "nftables")
	n := nstest.NewRouted(t)
	cmd := exec.Command("ip", "netns", "exec", n.R.Name, nft, "-f", "-")
	cmd.Stdin = strings.NewReader("table ip lvspt {\n\tchain out {\n\t\ttype filter hook output priority 0\n\t\t" + rule + "\n\t}\n}\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
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
