package discover

import (
	"strings"
	"testing"

	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// TestFromNftAndBack: a director balancing with an nftables numgen map
// (wrr 2:1) gives a topology that parses once the hosts are known, and is
// refused, naming the line, while one is still FILL-IN.
func TestFromNftAndBack(t *testing.T) {
	f := &obs.Facts{NftRules: []obs.NftRule{{
		Family: "ip", Table: "lvs", Chain: "pre", NAT: "dnat", DAddr: "192.0.2.80", DPort: 80, Proto: "tcp",
		NATTo: []string{"198.19.10.11", "198.19.10.11", "198.19.10.12"}, Text: "numgen inc mod 3 map",
	}}}
	hosts, err := ParseHosts("rips.txt", "198.19.10.11 netns:web-a\n# comment\n")
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := Services(f, hosts)
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 1 || svcs[0].Scheduler != "wrr" || *svcs[0].RealServers[0].Weight != 2 || *svcs[0].RealServers[1].Weight != 1 {
		t.Fatalf("services: %+v", svcs)
	}
	text := Write("netns:lb", "netns:cl", "192.0.2.50", svcs)
	_, err = topology.Parse("d.yaml", []byte(text))
	if err == nil || !strings.Contains(err.Error(), "FILL-IN") || !strings.HasPrefix(err.Error(), "d.yaml:") {
		t.Fatalf("a FILL-IN host must be refused with its place, got %v\n%s", err, text)
	}
	text = strings.Replace(text, "host: FILL-IN", "host: netns:web-b", 1)
	top, err := topology.Parse("d.yaml", []byte(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if top.Services[0].RealServers[1].Host != "netns:web-b" || top.Services[0].RealServers[0].Address != "198.19.10.11:80" {
		t.Fatalf("%+v", top.Services[0])
	}
}

func TestParseHostsErrors(t *testing.T) {
	for _, in := range []string{"198.19.10.11", "web1 netns:a", "198.19.10.11 docker:x"} {
		if _, err := ParseHosts("h.txt", in); err == nil || !strings.HasPrefix(err.Error(), "h.txt:1:") {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestIPVS(t *testing.T) {
	f := &obs.Facts{IPVS: &obs.IPVSTable{Services: []obs.IPVSService{{Proto: "tcp", Addr: "203.0.113.100:80", Scheduler: "wlc",
		Dests: []obs.IPVSDest{{Addr: "198.18.0.2:80", Forward: "masq", Weight: 3}}}}}}
	svcs, err := Services(f, nil)
	if err != nil || svcs[0].Scheduler != "wlc" || *svcs[0].RealServers[0].Weight != 3 {
		t.Fatalf("%+v %v", svcs, err)
	}
}

// An IPVS firewall-mark service knows only its mark; the VIP and ports to
// test it with come from the rules that set the mark, nft or iptables.
// Without one, the written file says what to fill in.
func TestFwmarkTraffic(t *testing.T) {
	mark := uint32(1)
	ipvs := &obs.IPVSTable{Services: []obs.IPVSService{{Proto: "fwmark", Mark: 1, Scheduler: "rr",
		Dests: []obs.IPVSDest{{Addr: "198.18.0.2:0", Forward: "masq", Weight: 1}}}}}
	for name, f := range map[string]*obs.Facts{
		"nft": {IPVS: ipvs, NftRules: []obs.NftRule{
			{Family: "ip", Table: "lvs", Chain: "mangle", DAddr: "203.0.113.100", Proto: "tcp", DPort: 8080, Mark: &mark},
			{Family: "ip", Table: "lvs", Chain: "mangle", DAddr: "203.0.113.100", Proto: "udp", DPort: 500, Mark: &mark},
		}},
		"iptables": {IPVS: ipvs, IptablesSave: "*mangle\n" +
			"[3:180] -A PREROUTING -d 203.0.113.100/32 -p tcp -m tcp --dport 8080 -j MARK --set-xmark 0x1/0xffffffff\n" +
			"[0:0] -A PREROUTING -d 203.0.113.100/32 -p udp -m udp --dport 500 -j MARK --set-mark 1\n" +
			"[0:0] -A PREROUTING -d 203.0.113.200/32 -p tcp -m tcp --dport 443 -j MARK --set-xmark 0x2/0xffffffff\nCOMMIT\n"},
	} {
		svcs, err := Services(f, map[string]string{"198.18.0.2": "netns:rs1"})
		if err != nil {
			t.Fatal(err)
		}
		if s := svcs[0]; s.VIP != "203.0.113.100" || strings.Join(s.Ports, ",") != "tcp/8080,udp/500" {
			t.Errorf("%s: vip %q ports %v, want 203.0.113.100 and tcp/8080,udp/500", name, s.VIP, s.Ports)
		}
		top, err := topology.Parse("d.yaml", []byte(Write("netns:lb", "netns:cl", "", svcs)))
		if err != nil || len(top.Services[0].Tests()) != 2 {
			t.Errorf("%s: the written file does not test the service: %v", name, err)
		}
	}
	svcs, _ := Services(&obs.Facts{IPVS: ipvs}, nil)
	if text := Write("netns:lb", "netns:cl", "", svcs); !strings.Contains(text, "FILL IN vip: and ports:") {
		t.Errorf("no marking rule: the file does not say what to fill in:\n%s", text)
	}
}
