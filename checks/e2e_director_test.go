package checks_test

import (
	"testing"

	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
)

// directorCases are the director-side faults of FAULTS.md (HOWTO Q.3) that
// the firewall, the balancing table and the VIP decide, each variant, and
// two pairs with faults of other families.
var directorCases = []labCase{
	{name: "director-firewall-drops-requests", faults: []inject{{"director-firewall-drops-requests", "nft"}}, want: []string{"director-firewall-drops-requests"}},
	{name: "director-forward-policy-drop", faults: []inject{{"director-forward-policy-drop", "nft"}}, want: []string{"director-forward-policy-drop"}},
	{name: "conntrack-invalid-drop", faults: []inject{{"conntrack-invalid-drop", ""}}, want: []string{"conntrack-invalid-drop"}},
	{name: "replies-not-translated@rs2", faults: []inject{{"replies-not-translated@rs2", ""}}, want: []string{"replies-not-translated"}},
	{name: "vip-not-on-director", faults: []inject{{"vip-not-on-director", ""}}, want: []string{"vip-not-on-director"}},
	{name: "service-missing", faults: []inject{{"service-missing", "delete"}}, want: []string{"service-missing"}, warnings: []string{}},
	{name: "service-missing/all-weights-zero", faults: []inject{{"service-missing", "all-weights-zero"}}, want: []string{"service-missing"}, warnings: []string{"rs-weight-zero", "rs-weight-zero"}},
	{name: "rs-weight-zero@rs2", faults: []inject{{"rs-weight-zero@rs2", ""}}, want: []string{}, warnings: []string{"rs-weight-zero"}},
	{name: "two: service-missing + rs-no-listener@rs2", faults: []inject{{"service-missing", "delete"}, {"rs-no-listener@rs2", ""}}, want: []string{"service-missing", "rs-no-listener"}},
	{name: "two: director-firewall-drops-requests + rs-wrong-gateway@rs2", faults: []inject{{"director-firewall-drops-requests", "nft"}, {"rs-wrong-gateway@rs2", ""}}, want: []string{"director-firewall-drops-requests", "rs-wrong-gateway"}},
}

// directorIptablesCases need the iptables commands (nft and legacy
// backends).
var directorIptablesCases = []labCase{
	{name: "director-forward-policy-drop/iptables", faults: []inject{{"director-forward-policy-drop", "iptables"}}, want: []string{"director-forward-policy-drop"}},
	{name: "director-firewall-drops-requests/iptables-legacy", faults: []inject{{"director-firewall-drops-requests", "iptables-legacy"}}, want: []string{"director-firewall-drops-requests"}},
	{name: "director-firewall-drops-requests/iptables", faults: []inject{{"director-firewall-drops-requests", "iptables"}}, want: []string{"director-firewall-drops-requests"}},
}

// TestLabFaultsDirector injects each of directorCases into a fresh lab and
// requires exactly its error findings (and warnings, where given).
func TestLabFaultsDirector(t *testing.T) { runLabCases(t, directorCases) }

// TestLabFaultsDirectorIptables: the same with rules written by iptables.
func TestLabFaultsDirectorIptables(t *testing.T) {
	testenv.RequireCommand(t, "iptables", "iptables")
	testenv.RequireCommand(t, "iptables-legacy", "iptables")
	runLabCases(t, directorIptablesCases)
}
