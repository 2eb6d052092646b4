package checks

import (
	"fmt"
	"slices"
	"testing"

	"github.com/lvsdoctor/lvsdoctor/checks/classify"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/capture"
)

func TestTestCount(t *testing.T) {
	w := func(ws ...int) []topology.RealServer {
		var rs []topology.RealServer
		for _, x := range ws {
			rs = append(rs, topology.RealServer{Weight: &x})
		}
		return rs
	}
	opt := Options{MaxConnections: 64}
	for _, c := range []struct {
		name  string
		sched string
		rs    []topology.RealServer
		want  int
	}{
		{"rr twice round", "rr", w(1, 1, 1), 6},
		{"rr weights do not matter", "rr", w(10, 1), 4},
		{"wrr cycle no longer than twice round", "wrr", w(3, 2, 1), 6},
		{"wrr light server last in a long cycle", "wrr", w(10, 1), 11},
		{"wrr common divisor", "wrr", w(20, 10), 4},
		{"wrr quiesced server", "wrr", w(5, 0), 4},
		{"wrr all quiesced", "wrr", w(0, 0), 4},
		{"wrr capped", "wrr", w(100, 1), 64},
		{"sh eight per server", "sh", w(1, 1), 16},
		{"rr capped", "rr", w(make([]int, 50)...), 64},
	} {
		s := topology.Service{Scheduler: c.sched, RealServers: c.rs}
		if got := testCount(s, opt); got != c.want {
			t.Errorf("%s: testCount = %d, want %d", c.name, got, c.want)
		}
	}
}

// TestCaptureRing: a real server gets the small ring where round robin
// gives it a share of the test traffic, the default where a scheduler may
// give it all; the director and the client always the default.
func TestCaptureRing(t *testing.T) {
	opt := Options{MaxConnections: 64}
	svc := func(sched string, persistent bool, n int) topology.Service {
		s := topology.Service{VIP: "203.0.113.100:80", Proto: "tcp", Scheduler: sched, Persistent: persistent}
		for i := range n {
			s.RealServers = append(s.RealServers, topology.RealServer{Host: fmt.Sprintf("rs%d", i+1)})
		}
		return s
	}
	rs1 := &classify.Host{Label: "rs1", Role: classify.RoleRealServer}
	small := capture.DefaultRing / 2
	for _, c := range []struct {
		name string
		svcs []topology.Service
		h    *classify.Host
		want int
	}{
		{"rr, two servers, four services", []topology.Service{svc("rr", false, 2), svc("rr", false, 2), svc("rr", false, 2), svc("rr", false, 2)}, rs1, small},
		{"rr, fifty servers", []topology.Service{svc("rr", false, 50), svc("rr", false, 50)}, rs1, small},
		{"wrr", []topology.Service{svc("wrr", false, 3)}, rs1, small},
		{"sh, one service: all of it is one burst's worth", []topology.Service{svc("sh", false, 50)}, rs1, small},
		{"sh may send all of two to one", []topology.Service{svc("sh", false, 50), svc("sh", false, 50)}, rs1, 0},
		{"persistence may send all to one", slices.Repeat([]topology.Service{svc("rr", true, 40)}, 2), rs1, 0},
		{"shares of many services add up", slices.Repeat([]topology.Service{svc("rr", false, 2)}, 40), rs1, 0},
		{"the director", []topology.Service{svc("rr", false, 50)}, &classify.Host{Label: "director", Role: classify.RoleDirector}, 0},
	} {
		top := &topology.Topology{Services: c.svcs}
		if got := captureRing(top, c.h, opt); got != c.want {
			t.Errorf("%s: captureRing = %d, want %d", c.name, got, c.want)
		}
	}
}
