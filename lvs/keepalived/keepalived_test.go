package keepalived

import (
	"errors"
	"fmt"
	"github.com/lvsdoctor/lvsdoctor/lvs/tablediff"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsdoctor/lvsdoctor/lvs/ipvs"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

func load(t testing.TB, name string) *Config {
	t.Helper()
	c, err := Load(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func render(ss []topology.Service) string {
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "%s sched=%s persistent=%v\n", s, s.Scheduler, s.Persistent)
		for _, r := range s.RealServers {
			fmt.Fprintf(&b, "  %s %s w=%d\n", r.Address, r.Forward, r.W())
		}
	}
	return b.String()
}

func TestParseLab(t *testing.T) {
	c := load(t, "keepalived.conf")
	got := render(c.Services())
	want := `tcp 203.0.113.100:80 sched=rr persistent=false
  198.18.0.2:80 masq w=1
  198.18.0.3:80 masq w=2
tcp 203.0.113.100:443 sched=wlc persistent=true
  198.18.0.2:443 masq w=1
  198.18.0.3:443 masq w=1
fwmark 1 sched=wlc persistent=true
  198.18.0.2:0 route w=1
  198.18.0.3:0 route w=1
udp 203.0.113.100:53 sched=sh persistent=false
  198.18.0.2:53 masq w=3
  198.18.0.3:53 masq w=1
udp 203.0.113.101:53 sched=sh persistent=false
  198.18.0.2:53 masq w=3
  198.18.0.3:53 masq w=1
udp 203.0.113.102:53 sched=sh persistent=false
  198.18.0.2:53 masq w=3
  198.18.0.3:53 masq w=1
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	vs := c.VirtualServers[1]
	if vs.Pos.Line != 68 || *vs.Persistence != 300 || vs.Granularity != "255.255.255.0" || vs.SorryServer == nil ||
		vs.SorryServer.Addr != "198.18.0.9:443" || vs.RealServers[1].Checkers[0] != "MISC_CHECK" {
		t.Errorf("443: %+v", vs)
	}
	if fw := c.VirtualServers[2]; *fw.Persistence != DefaultPersistence || fw.Forward != "route" {
		t.Errorf("fwmark: %+v", fw)
	}
	rs := c.VirtualServers[0].RealServers[1]
	if !rs.Inhibit || rs.Checkers[0] != "TCP_CHECK" || rs.Pos.Line != 58 {
		t.Errorf("rs: %+v", rs)
	}
	if len(c.Includes) != 1 || c.Includes[0].Pattern != "/etc/keepalived/conf.d/*.conf" || c.Includes[0].Pos.Line != 14 {
		t.Errorf("includes %+v", c.Includes)
	}
	if len(c.Warnings) != 1 || !strings.HasPrefix(c.Warnings[0], filepath.Join("testdata", "keepalived.conf")+":14: include") {
		t.Errorf("warnings %q", c.Warnings)
	}
	if dns := c.VirtualServers[3]; strings.Join(dns.Flags, ",") != "ops,sh-port" {
		t.Errorf("flags %v", dns.Flags)
	}
}

func TestDefaults(t *testing.T) {
	c := load(t, "keepalived_minimal.conf")
	got := render(c.Services())
	want := "udp 10.0.0.1:80 sched=wlc persistent=false\n  10.0.1.1:8080 masq w=1\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "keepalived_minimal.conf:1: virtual_server 10.0.0.1:80 has no `protocol`: keepalived 2.x then programs UDP") {
		t.Errorf("warnings %q", c.Warnings)
	}
}

func TestWarnings(t *testing.T) {
	in := `virtual_server 10.0.0.1 80 {
  protocol TCP
  lb_kind DR
  real_server 10.0.1.1 8080 {
  }
  real_server 10.0.1.1 8080 {
  }
}
virtual_server fwmark 2 {
  protocol TCP
}
@backup virtual_server 10.0.0.2 80 {
  protocol TCP
  real_server 10.0.1.2 80 {
  }
}
$PORT=80
`
	c, err := Parse("k.conf", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"k.conf:4: real_server 10.0.1.1:8080: with DR the real server's port cannot differ",
		"k.conf:6: real_server 10.0.1.1:8080 is duplicated",
		"k.conf:9: virtual_server fwmark 2: protocol TCP is ignored",
		"k.conf:9: virtual_server fwmark 2 has no real_server",
		"k.conf:12: conditional line @backup",
		"k.conf:17: parameter $PORT is not expanded",
	} {
		found := false
		for _, g := range c.Warnings {
			found = found || strings.HasPrefix(g, w)
		}
		if !found {
			t.Errorf("no warning %q in %q", w, c.Warnings)
		}
	}
	if len(c.VirtualServers) != 3 || c.VirtualServers[2].Addr != "10.0.0.2:80" {
		t.Errorf("%+v", c.VirtualServers)
	}
}

func TestErrorsNameFileLine(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"virtual_server 10.0.0.1 80 {\n  lb_kind NATT\n}\n", "k.conf:2: lb_kind \"NATT\": valid are NAT, DR, TUN"},
		{"virtual_server 10.0.0.1 80 {\n  protocol ICMP\n}\n", "k.conf:2: protocol \"ICMP\": valid are TCP, UDP, SCTP"},
		{"virtual_server 10.0.0.1 80 {\n  real_server 10.0.1.1 80 {\n    weight heavy\n  }\n}\n", "k.conf:3: weight \"heavy\": want 0..65535"},
		{"virtual_server 10.0.0.300 80 {\n}\n", "k.conf:1: virtual_server \"10.0.0.300\" is not an IP address"},
		{"virtual_server 10.0.0.1 http {\n}\n", "k.conf:1: virtual_server port \"http\" is not a number"},
		{"virtual_server 10.0.0.1 80 {\n  real_server 10.0.1.1 80 {\n}\n", "k.conf:1: block is not closed"},
		{"global_defs {\n}\n}\n", "k.conf:3: `}` without a block to close"},
		{"virtual_server 10.0.0.1 80\n", "k.conf:1: virtual_server needs a { ... } block"},
		{"virtual_server fwmark x {\n}\n", "k.conf:1: virtual_server fwmark \"x\": want a number > 0"},
		{"virtual_server group NOPE {\n}\n", "k.conf:1: virtual_server group \"NOPE\": no virtual_server_group"},
		{"virtual_server_group G {\n  10.0.0.1-0 80\n}\n", "k.conf:2: address range \"10.0.0.1-0\""},
		{"virtual_server 10.0.0.1 80 {\n  persistence_timeout forever\n}\n", "k.conf:2: persistence_timeout \"forever\""},
		{"vrrp_script x {\n  script \"/bin/true\n}\n", "k.conf:2: unterminated \"quoted string\""},
		{"{\n}\n", "k.conf:1: `{` without a keyword before it"},
		{strings.Repeat("a {\n", 40), "blocks nested deeper than 32"},
	} {
		_, err := Parse("k.conf", []byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %s", c.in, err, c.want)
		}
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Errorf("%q: %T is not an *Error", c.in, err)
		}
	}
}

func TestCompare(t *testing.T) {
	c := load(t, "keepalived.conf")
	want := c.Services()[:3] // tcp 80, tcp 443, fwmark 1
	// the director's table as ipvsadm -Sn shows it after a few things went wrong
	saved := `-A -t 203.0.113.100:80 -s wlc
-a -t 203.0.113.100:80 -r 198.18.0.2:80 -m -w 1
-a -t 203.0.113.100:80 -r 198.18.0.3:80 -m -w 0
-A -t 203.0.113.100:443 -s wlc
-a -t 203.0.113.100:443 -r 198.18.0.2:443 -g -w 1
-a -t 203.0.113.100:443 -r 198.18.0.9:443 -m -w 1
-A -u 203.0.113.100:53 -s sh
`
	tb, err := ipvs.ParseIpvsadmSave(strings.NewReader(saved))
	if err != nil {
		t.Fatal(err)
	}
	got := tablediff.Compare(want, *tb.Obs())
	var b strings.Builder
	for _, d := range got {
		fmt.Fprintf(&b, "%s | %s\n", d.Kind, d)
	}
	wantText := `scheduler-differs | tcp 203.0.113.100:80 runs scheduler wlc in the IPVS table, configured rr
weight-differs | real server 198.18.0.3:80 of tcp 203.0.113.100:80 has weight 0 in the IPVS table, configured 2 (weight 0 takes no new connections; keepalived sets it when a health check fails with inhibit_on_failure)
persistence-differs | tcp 203.0.113.100:443 is not persistent in the IPVS table, configured persistent
forward-differs | real server 198.18.0.2:443 of tcp 203.0.113.100:443 is forwarded by route (DR, -g) in the IPVS table, configured masq (NAT, -m)
realserver-missing | real server 198.18.0.3:443 of tcp 203.0.113.100:443 is configured but not in the IPVS table (keepalived removes a real server whose health check fails, unless inhibit_on_failure)
realserver-extra | real server 198.18.0.9:443 of tcp 203.0.113.100:443 is in the IPVS table but not configured (a keepalived sorry_server appears when all real servers are down)
service-missing | fwmark 1 is configured but not in the director's IPVS table
service-extra | udp 203.0.113.100:53 is in the IPVS table but not configured
`
	if b.String() != wantText {
		t.Errorf("got\n%s\nwant\n%s", b.String(), wantText)
	}
	// the same table as configured: no difference
	lab, err := ipvs.ParseIpvsadmSave(strings.NewReader(`-A -t 203.0.113.100:80 -s rr
-a -t 203.0.113.100:80 -r 198.18.0.3:80 -m -w 2
-a -t 203.0.113.100:80 -r 198.18.0.2:80 -m -w 1
`))
	if err != nil {
		t.Fatal(err)
	}
	if d := tablediff.Compare(want[:1], *lab.Obs()); len(d) != 0 {
		t.Errorf("differences in an equal table: %v", d)
	}
	if d := tablediff.Compare(nil, obs.IPVSTable{}); len(d) != 0 {
		t.Errorf("empty: %v", d)
	}
}

// The testdata's keepalived.conf and the ipvs package's recorded
// /proc/net/ip_vs agree on the web service.
func TestCompareWithProcTable(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "ipvs", "testdata", "proc_ip_vs.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tb, err := ipvs.ParseProcIPVS(f)
	if err != nil {
		t.Fatal(err)
	}
	c := load(t, "keepalived.conf")
	d := tablediff.Compare(c.Services()[:1], *tb.Obs())
	// the web service matches except for the weights (2 and 1 swapped)
	var kinds []string
	for _, x := range d {
		if x.Service == "tcp 203.0.113.100:80" {
			kinds = append(kinds, x.Kind+" "+x.RealServer)
		}
	}
	if strings.Join(kinds, ";") != "weight-differs 198.18.0.2:80;weight-differs 198.18.0.3:80" {
		t.Errorf("%v", d)
	}
}
