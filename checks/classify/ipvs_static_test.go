package classify

import (
	"slices"
	"strings"
	"testing"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// The static IPVS findings, judged on the healthy lab recorded on kernel
// IPVS in the VM (fixtures/ipvs-healthy) with one thing changed each: the
// configuration, or the director's table and sysctls as another director
// would show them. The unchanged recording must give none of them.
func TestIPVSStatic(t *testing.T) {
	director := func(in *Input, fn func(f *obs.Facts)) {
		for _, h := range in.Hosts {
			if h.Role == RoleDirector {
				for _, f := range []*obs.Facts{h.Before, h.After} {
					if f != nil {
						fn(f)
					}
				}
			}
		}
	}
	service := func(f *obs.Facts, addr string) *obs.IPVSService {
		for i := range f.IPVS.Services {
			if f.IPVS.Services[i].Addr == addr {
				return &f.IPVS.Services[i]
			}
		}
		t.Fatalf("no %s in the recorded table", addr)
		return nil
	}
	const web = "203.0.113.100:80"
	cases := []struct {
		name   string
		change func(in *Input)
		want   string // "ID@host: summary fragment"; "" wants none
	}{
		{"as recorded", func(*Input) {}, ""},
		{"scheduler differs", func(in *Input) { in.Topology.Services[0].Scheduler = "wlc" }, "config-differs@director: runs scheduler rr in the IPVS table, configured wlc"},
		{"weight differs", func(in *Input) {
			w := 3
			in.Topology.Services[0].RealServers[1].Weight = &w
		}, "config-differs@director: has weight 1 in the IPVS table, configured 3"},
		{"persistence differs", func(in *Input) { in.Topology.Services[0].Persistent = true }, "config-differs@director: is not persistent in the IPVS table, configured persistent"},
		{"real server nobody configured", func(in *Input) {
			in.Topology.Services[0].RealServers = in.Topology.Services[0].RealServers[:1]
		}, "config-differs@director: real server 198.18.0.3:80 of tcp 203.0.113.100:80 is in the IPVS table but not configured"},
		{"extra service, partial topology", func(in *Input) {
			in.Topology.Services = in.Topology.Services[:1]
		}, ""},
		{"extra service, keepalived.conf", func(in *Input) {
			in.Topology.Services = in.Topology.Services[:3]
			in.Topology.Source = &topology.Source{Kind: "keepalived", File: "keepalived.conf", Complete: true}
		}, "config-differs@director: fwmark 1 is in the IPVS table but not configured"},
		{"DR forwarding in a NAT cluster", func(in *Input) {
			director(in, func(f *obs.Facts) { service(f, web).Dests[1].Forward = "route" })
		}, "forward-not-masq@rs1: forwards tcp 203.0.113.100:80 to 198.18.0.2:80 by direct routing (DR, -g), not by NAT"},
		{"vs.conntrack=0 under stateful rules", func(in *Input) {
			director(in, func(f *obs.Facts) {
				if f.Sysctls != nil {
					f.Sysctls["net.ipv4.vs.conntrack"] = "0"
				}
				f.NftRules = append(f.NftRules, obs.NftRule{Family: "ip", Table: "lvsdoctor", Chain: "filter_forward", Handle: 99,
					CtState: "established,related", Verdict: "accept", Text: "ct state established,related accept"})
			})
		}, "ipvs-sysctl-risk@director: net.ipv4.vs.conntrack=0 on director while its filter rules match on conntrack state"},
		{"conn_reuse_mode on an old kernel", func(in *Input) {
			director(in, func(f *obs.Facts) { f.Kernel = "5.4.0-150-generic" })
		}, "ipvs-sysctl-risk@director: conn_reuse_mode=1 with vs.conntrack=1 on Linux 5.4.0-150-generic"},
		{"conn_reuse_mode on a fixed kernel", func(in *Input) {
			director(in, func(f *obs.Facts) { f.Kernel = "6.1.0-27-cloud-amd64" })
		}, ""},
		{"keepalived removes failed real servers", func(in *Input) {
			in.Topology.Source = &topology.Source{Kind: "keepalived", File: "keepalived.conf", RemovedOnFailure: []string{"198.18.0.2:80"}}
		}, "ipvs-sysctl-risk@director: expire_nodest_conn=0 on director and keepalived.conf removes failed real servers"},
		{"timeout shorter than keepalives", func(in *Input) {
			director(in, func(f *obs.Facts) { f.IPVS.Timeouts = &obs.IPVSTimeouts{TCP: 900, TCPFin: 120, UDP: 300} })
			for _, h := range in.Hosts {
				if h.Role == RoleRealServer && h.Before != nil {
					h.Before.Sysctls["net.ipv4.tcp_keepalive_time"] = "7200"
				}
			}
		}, "ipvs-timeout-short@director: forgets an idle TCP connection after 900 s"},
		{"timeout longer than keepalives", func(in *Input) {
			director(in, func(f *obs.Facts) { f.IPVS.Timeouts = &obs.IPVSTimeouts{TCP: 7300, TCPFin: 120, UDP: 300} })
			for _, h := range in.Hosts {
				if h.Role == RoleRealServer && h.Before != nil {
					h.Before.Sysctls["net.ipv4.tcp_keepalive_time"] = "7200"
				}
			}
		}, ""},
		{"connection table small", func(in *Input) {
			director(in, func(f *obs.Facts) {
				f.IPVS.Version, f.IPVS.ConnTableSize = "1.2.1", 4096
				service(f, web).Dests[0].InactiveC = 80000
			})
		}, "ipvs-conn-table-small@director: IPVS connections in a hash table of 4096 buckets"},
		{"connection table large enough", func(in *Input) {
			director(in, func(f *obs.Facts) {
				f.IPVS.Version, f.IPVS.ConnTableSize = "1.2.1", 4096
				service(f, web).Dests[0].InactiveC = 60000
			})
		}, ""},
		{"service missing, read without traffic", func(in *Input) {
			in.Static = true
			for i := range in.Services {
				in.Services[i].Conns = nil
			}
			director(in, func(f *obs.Facts) {
				f.IPVS.Services = slices.DeleteFunc(f.IPVS.Services, func(s obs.IPVSService) bool { return s.Addr == web })
				f.Modules = &obs.Modules{Loaded: []string{"ip_vs", "ip_vs_ftp", "ip_vs_rr"}, Builtin: []string{}, Loadable: []string{"ip_vs", "ip_vs_ftp", "ip_vs_rr", "ip_vs_wlc"}}
			})
			in.Topology.Services[0].Scheduler = "mh"
			in.Services[0].Service.Scheduler = "mh"
		}, "service-missing@director: tcp 203.0.113.100:80 is not in director's IPVS table (read without test traffic)"},
		{"ftp helper not loaded, read without traffic", func(in *Input) {
			in.Static = true
			for i := range in.Services {
				in.Services[i].Conns = nil
			}
			director(in, func(f *obs.Facts) {
				f.Modules = &obs.Modules{Loaded: []string{"ip_vs", "ip_vs_rr"}, Builtin: []string{}, Loadable: []string{"ip_vs", "ip_vs_ftp", "ip_vs_rr"}}
			})
		}, "director-ftp-helper-missing@director: balances the FTP service tcp 203.0.113.100:21 in NAT mode without ip_vs_ftp loaded"},
		{"ftp helper loaded, read without traffic", func(in *Input) {
			in.Static = true
			for i := range in.Services {
				in.Services[i].Conns = nil
			}
			director(in, func(f *obs.Facts) {
				f.Modules = &obs.Modules{Loaded: []string{"ip_vs", "ip_vs_ftp", "ip_vs_rr"}, Builtin: []string{}, Loadable: []string{"ip_vs", "ip_vs_ftp", "ip_vs_rr"}}
			})
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var in Input
			load(t, "../../fixtures/ipvs-healthy/observations.json", &in)
			c.change(&in)
			out := Run(&in)
			var got []result.Finding
			for _, f := range out.Findings {
				switch f.ID {
				case "config-differs", "forward-not-masq", "ipvs-sysctl-risk", "ipvs-timeout-short", "ipvs-conn-table-small", "service-missing", "director-ftp-helper-missing":
					got = append(got, f)
				}
			}
			if c.want == "" {
				if len(got) > 0 {
					t.Fatalf("want no static IPVS finding, got %+v", got)
				}
				return
			}
			head, frag, _ := strings.Cut(c.want, ": ")
			id, host, _ := strings.Cut(head, "@")
			if len(got) != 1 || got[0].ID != id || got[0].Host != host || !strings.Contains(got[0].Summary, frag) {
				t.Fatalf("want one %s on %s saying %q, got %+v", id, host, frag, got)
			}
			if len(got[0].Evidence) == 0 || len(got[0].Remedy) == 0 {
				t.Errorf("finding without evidence or remedy: %+v", got[0])
			}
			if c.name == "service missing, read without traffic" && !strings.Contains(strings.Join(got[0].Evidence, "\n"), "ip_vs_mh is not loaded") {
				t.Errorf("the missing scheduler module is not named: %q", got[0].Evidence)
			}
		})
	}
}
