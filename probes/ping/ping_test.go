package ping

import (
	"context"
	"testing"
	"time"

	"github.com/lvsdoctor/lvsdoctor/probes/internal/nstest"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
)

func TestPingOK(t *testing.T) {
	testenv.RequireRoot(t)
	p := nstest.NewPair(t)
	var r obs.Ping
	start := time.Now()
	p.A.MustDo(t, func() error {
		r = Run(context.Background(), obs.PingArgs{Src: p.AAddr, Dst: p.BAddr, Count: 3, Timeout: 2 * time.Second})
		return nil
	})
	t.Logf("%+v in %v", r, time.Since(start))
	if r.Error != "" || r.Sent != 3 || r.Received != 3 || len(r.RTTs) != 3 {
		t.Fatalf("want 3/3 replies, got %+v", r)
	}
}

func TestPingTimeout(t *testing.T) {
	testenv.RequireRoot(t)
	p := nstest.NewPair(t)
	var r obs.Ping
	start := time.Now()
	p.A.MustDo(t, func() error {
		r = Run(context.Background(), obs.PingArgs{Src: p.AAddr, Dst: "198.18.0.77", Count: 2, Timeout: 500 * time.Millisecond})
		return nil
	})
	took := time.Since(start)
	t.Logf("%+v in %v", r, took)
	if r.Received != 0 || r.Sent == 0 {
		t.Fatalf("want no reply, got %+v", r)
	}
	if took > 2*time.Second {
		t.Fatalf("ping blocked %v past its 500ms timeout", took)
	}
}

func TestPingBadSource(t *testing.T) {
	testenv.RequireRoot(t)
	p := nstest.NewPair(t)
	var r obs.Ping
	p.A.MustDo(t, func() error {
		r = Run(context.Background(), obs.PingArgs{Src: "203.0.113.9", Dst: p.BAddr})
		return nil
	})
	if r.Error == "" {
		t.Fatalf("want a bind error for a non-local source, got %+v", r)
	}
}
