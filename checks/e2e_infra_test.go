package checks_test

import (
	"testing"

	"github.com/lvsdoctor/lvsdoctor/lvs/lab"
)

var (
	flat          = lab.Options{Topology: lab.TopologyFlat}
	stateless     = lab.Options{Datapath: lab.DatapathNftStateless}
	flatStateless = lab.Options{Topology: lab.TopologyFlat, Datapath: lab.DatapathNftStateless}
)

// infraCases are the lab's other shapes (one-arm, stateless datapath,
// client on the director) and the faults that need them or the FTP and
// firewall-mark services.
var infraCases = []labCase{
	{name: "healthy/flat", opts: flat},
	{name: "healthy/stateless", opts: stateless},
	{name: "healthy/flat-stateless", opts: flatStateless},
	{name: "director-rpfilter-replies", faults: []inject{{"director-rpfilter-replies", ""}}, want: []string{"director-rpfilter-replies"}},
	{name: "icmp-redirect-bypass", opts: flatStateless, faults: []inject{{"icmp-redirect-bypass", ""}}, want: []string{"icmp-redirect-bypass"}},
	{name: "director-ftp-helper-missing", faults: []inject{{"director-ftp-helper-missing", ""}}, want: []string{"director-ftp-helper-missing"}},
	{name: "fwmark-not-marked", faults: []inject{{"fwmark-not-marked", ""}}, want: []string{"fwmark-not-marked"}},
	{name: "fwmark-not-marked/wrong-port", faults: []inject{{"fwmark-not-marked", "wrong-port"}}, want: []string{"fwmark-not-marked"}},
	{name: "fwmark-not-marked/flat-stateless", opts: flatStateless, faults: []inject{{"fwmark-not-marked", ""}}, want: []string{"fwmark-not-marked"}},
	{name: "client-on-director", opts: lab.Options{Topology: lab.TopologyClientOnDirector},
		faults: []inject{{"client-on-director", ""}}, want: nil, warnings: []string{"client-on-director"}},
	{name: "ipsec-ah-over-nat", faults: []inject{{"ipsec-ah-over-nat", ""}}, want: []string{"ipsec-ah-over-nat"}},
	{name: "rs-wrong-gateway@rs2/flat", opts: flat, faults: []inject{{"rs-wrong-gateway@rs2", ""}}, want: []string{"rs-wrong-gateway"}},
	{name: "two: director-ftp-helper-missing + fwmark-not-marked", faults: []inject{{"director-ftp-helper-missing", ""}, {"fwmark-not-marked", ""}},
		want: []string{"director-ftp-helper-missing", "fwmark-not-marked"}},
}

// TestLabFaultsInfra runs infraCases like TestLabFaults: a fresh lab of
// the case's shape, the faults injected, exactly the expected findings.
func TestLabFaultsInfra(t *testing.T) { runLabCases(t, infraCases) }
