package classify

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
)

// A first hop that did not answer the traceroute (the director out of ICMP
// budget for that real server) is not a failed Q.2 where the real
// server's ping got through and its own route lookup goes by the DIP; it
// is where the lookup goes elsewhere, or where the ping died too.
func TestTraceStepSilentFirstHop(t *testing.T) {
	var in Input
	load(t, "../../fixtures/healthy/observations.json", &in)
	d, rs := in.Hosts["director"], in.Hosts["rs1"]
	rip, cip := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("203.0.113.10")
	if st, sum := TraceStep(d, rs, rip, cip); st != result.Pass || !strings.HasPrefix(sum, "via 198.18.0.1 (DIP)") {
		t.Fatalf("recorded trace: %s %q", st, sum)
	}
	rs.Trace.Hops[0].Addr = ""
	if st, sum := TraceStep(d, rs, rip, cip); st != result.Pass || !strings.Contains(sum, "by ip route get") {
		t.Fatalf("silent first hop, route by the DIP: %s %q", st, sum)
	}
	ping := *rs.Ping
	rs.Ping.Received = 0
	if st, sum := TraceStep(d, rs, rip, cip); st != result.Fail || !strings.Contains(sum, "no answer from the first hop") {
		t.Fatalf("silent first hop, no ping either: %s %q", st, sum)
	}
	*rs.Ping = ping
	for i := range rs.RouteGets {
		rs.RouteGets[i].Gateway = "198.18.0.254"
	}
	if st, sum := TraceStep(d, rs, rip, cip); st != result.Fail || !strings.Contains(sum, "no answer from the first hop") {
		t.Fatalf("silent first hop, route elsewhere: %s %q", st, sum)
	}
}
