package checks

import (
	"testing"

	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
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
