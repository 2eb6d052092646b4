package checks_test

import (
	"os/exec"
	"testing"

	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
)

// rsCases are the real-server faults (HOWTO Q.4) and link-down: each
// variant, one on rs2, two at once on different hosts and on the same
// host, and a fault hiding another (what it hides goes to unchecked).
var rsCases = []labCase{
	{name: "rs-firewall-reject", faults: []inject{{"rs-firewall-reject", ""}}, want: []string{"rs-firewall-reject"}},
	{name: "rs-firewall-reject/admin-prohibited", faults: []inject{{"rs-firewall-reject", "admin-prohibited"}}, want: []string{"rs-firewall-reject"}},
	{name: "rs-firewall-reject@rs2", faults: []inject{{"rs-firewall-reject@rs2", ""}}, want: []string{"rs-firewall-reject"}},
	{name: "rs-firewall-drops-requests", faults: []inject{{"rs-firewall-drops-requests", ""}}, want: []string{"rs-firewall-drops-requests"}},
	{name: "rs-firewall-drops-requests/iptables", faults: []inject{{"rs-firewall-drops-requests", "iptables"}}, want: []string{"rs-firewall-drops-requests"}},
	{name: "rs-firewall-drops-replies", faults: []inject{{"rs-firewall-drops-replies", ""}}, want: []string{"rs-firewall-drops-replies"}},
	{name: "rs-rip-missing", faults: []inject{{"rs-rip-missing", ""}}, want: []string{"rs-rip-missing"}},
	{name: "rs-rpfilter", faults: []inject{{"rs-rpfilter", ""}}, want: []string{"rs-rpfilter"}},
	{name: "rs-direct-route-to-client", faults: []inject{{"rs-direct-route-to-client", ""}}, want: []string{"rs-direct-route-to-client"}},
	{name: "link-down", faults: []inject{{"link-down", ""}}, want: []string{"link-down"}},
	{name: "two: rs-firewall-drops-requests@rs1 + rs-rpfilter@rs2", faults: []inject{{"rs-firewall-drops-requests@rs1", ""}, {"rs-rpfilter@rs2", ""}},
		want: []string{"rs-firewall-drops-requests", "rs-rpfilter"}},
	{name: "two: rs-rip-missing@rs1 + link-down@rs2", faults: []inject{{"rs-rip-missing@rs1", ""}, {"link-down@rs2", ""}},
		want: []string{"link-down", "rs-rip-missing"}},
	{name: "two: rs-firewall-reject@rs1 + rs-direct-route-to-client@rs1", faults: []inject{{"rs-firewall-reject@rs1", ""}, {"rs-direct-route-to-client@rs1", ""}},
		want: []string{"rs-direct-route-to-client", "rs-firewall-reject"}},
	// The down link hides the drop rule: link-down alone, the rest unchecked.
	{name: "two: link-down@rs1 + rs-firewall-drops-replies@rs1", faults: []inject{{"link-down@rs1", ""}, {"rs-firewall-drops-replies@rs1", ""}},
		want: []string{"link-down"}},
}

// TestLabFaultsRS injects each real-server fault into a fresh lab and
// requires exactly its error findings. Cases that write rules with the
// iptables command need it; without it they skip (fail under
// LVSDOCTOR_REQUIRE_ALL) and the others still run.
func TestLabFaultsRS(t *testing.T) {
	cs := rsCases
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Run("iptables", func(t *testing.T) { testenv.RequireCommand(t, "iptables", "iptables") })
		cs = nil
		for _, c := range rsCases {
			if !usesIptables(c) {
				cs = append(cs, c)
			}
		}
	}
	runLabCases(t, cs)
}

func usesIptables(c labCase) bool {
	for _, f := range c.faults {
		if f.variant == "iptables" {
			return true
		}
	}
	return false
}
