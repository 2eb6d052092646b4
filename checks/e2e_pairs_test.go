package checks_test

import "testing"

// pairCases put two faults into one lab, on different hosts and on the
// same host: each must be named, and neither may hide the other or drag
// in a third. Where one fault hides another's evidence, the static
// picture must still name it.
var pairCases = []labCase{
	{name: "pair: firewall drops replies + rs2 no listener", faults: []inject{{"director-firewall-drops-replies", ""}, {"rs-no-listener@rs2", ""}}, want: []string{"director-firewall-drops-replies", "rs-no-listener"}},
	{name: "pair: no forwarding + rs1 no listener", faults: []inject{{"director-no-forwarding", ""}, {"rs-no-listener@rs1", ""}}, want: []string{"director-no-forwarding", "rs-no-listener"}},
	{name: "pair: rs1 and rs2 wrong gateway", faults: []inject{{"rs-wrong-gateway@rs1", ""}, {"rs-wrong-gateway@rs2", "no-default"}}, want: []string{"rs-wrong-gateway", "rs-wrong-gateway"}},
	{name: "pair: rpfilter requests + rs2 no listener", faults: []inject{{"director-rpfilter-requests", ""}, {"rs-no-listener@rs2", ""}}, want: []string{"director-rpfilter-requests", "rs-no-listener"}},
	{name: "pair: rs1 and rs2 no listener", faults: []inject{{"rs-no-listener@rs1", ""}, {"rs-no-listener@rs2", ""}}, want: []string{"rs-no-listener", "rs-no-listener"}},
	{name: "pair: no masquerade + rs1 wrong gateway", faults: []inject{{"director-no-masquerade", ""}, {"rs-wrong-gateway@rs1", "router-drops"}}, want: []string{"director-no-masquerade", "rs-wrong-gateway"}},
	{name: "pair: firewall drops replies + no masquerade (same host)", faults: []inject{{"director-firewall-drops-replies", ""}, {"director-no-masquerade", ""}}, want: []string{"director-firewall-drops-replies", "director-no-masquerade"}},
	{name: "pair: rs1 no listener + wrong gateway (same host)", faults: []inject{{"rs-no-listener@rs1", ""}, {"rs-wrong-gateway@rs1", ""}}, want: []string{"rs-no-listener", "rs-wrong-gateway"}},
	{name: "pair: no forwarding + no masquerade (same host)", faults: []inject{{"director-no-forwarding", ""}, {"director-no-masquerade", ""}}, want: []string{"director-no-forwarding", "director-no-masquerade"}},
	{name: "pair: rpfilter requests (warm) + firewall drops replies (same host)", faults: []inject{{"director-rpfilter-requests", "warm"}, {"director-firewall-drops-replies", ""}}, want: []string{"director-firewall-drops-replies", "director-rpfilter-requests"}},
}

// TestLabFaultPairs: at least ten pairs of faults at once.
func TestLabFaultPairs(t *testing.T) { runLabCases(t, pairCases) }
