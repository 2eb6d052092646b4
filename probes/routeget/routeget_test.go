package routeget

import (
	"context"
	"testing"

	"github.com/lvsdoctor/lvsdoctor/probes/internal/nstest"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
)

func TestRouteGet(t *testing.T) {
	testenv.RequireRoot(t)
	n := nstest.NewRouted(t)
	var via, from, nonlocal, iif, local obs.RouteGet
	n.A.MustDo(t, func() error {
		via = Run(context.Background(), obs.RouteGetArgs{Dst: n.BAddr})
		from = Run(context.Background(), obs.RouteGetArgs{Dst: n.BAddr, Src: n.AAddr})
		nonlocal = Run(context.Background(), obs.RouteGetArgs{Dst: n.BAddr, Src: "203.0.113.9"})
		local = Run(context.Background(), obs.RouteGetArgs{Dst: n.AAddr})
		return nil
	})
	n.R.MustDo(t, func() error {
		iif = Run(context.Background(), obs.RouteGetArgs{Dst: n.BAddr, Src: n.AAddr, Iif: "eth0"})
		return nil
	})
	for _, r := range []obs.RouteGet{via, from, nonlocal, local, iif} {
		t.Logf("%+v", r)
	}
	if via.Error != "" || via.Type != "unicast" || via.Gateway != n.RA || via.Dev != "eth0" || via.PrefSrc != n.AAddr {
		t.Errorf("route get %s: %+v", n.BAddr, via)
	}
	if from.Error != "" || from.Gateway != n.RA || from.Dev != "eth0" {
		t.Errorf("route get from: %+v", from)
	}
	if nonlocal.Error != "network is unreachable" {
		t.Errorf("non-local source: want ENETUNREACH, got %+v", nonlocal)
	}
	if local.Type != "local" || local.Dev != "lo" {
		t.Errorf("local: %+v", local)
	}
	if iif.Error != "" || iif.Dev != "eth1" || iif.Gateway != "" || iif.Type != "unicast" {
		t.Errorf("iif: %+v", iif)
	}
}

func TestFlags(t *testing.T) {
	if Flags(0x40000|0x80000000) != "redirected" || Flags(0) != "" {
		t.Fatal("flags")
	}
	if TypeName(2) != "local" || TypeName(99) != "type99" {
		t.Fatal("type names")
	}
}
