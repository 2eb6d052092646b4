package traceroute

import (
	"context"
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
