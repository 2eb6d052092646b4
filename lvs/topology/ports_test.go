package topology

import (
	"strings"
	"testing"
)

const fwmarkGood = `client: {host: netns:c, address: 203.0.113.10}
director: {host: netns:d}
services:
  - vip: 203.0.113.100
    proto: fwmark
    mark: 1
    ports: [8080, udp/500, "tcp/21"]
    realservers:
      - {address: 198.18.0.2, host: netns:rs1}
      - {address: "198.18.0.3:9000", host: netns:rs2}
`

func TestFwmarkPorts(t *testing.T) {
	top, err := Parse("t.yaml", []byte(fwmarkGood))
	if err != nil {
		t.Fatal(err)
	}
	s := top.Services[0]
	var got []string
	for _, x := range s.Tests() {
		got = append(got, x.Proto+" "+x.Dst.String())
	}
	if strings.Join(got, ", ") != "tcp 203.0.113.100:8080, udp 203.0.113.100:500, tcp 203.0.113.100:21" {
		t.Errorf("tests = %v", got)
	}
	if s.String() != "fwmark 1" || s.VIPPort().Addr().String() != "203.0.113.100" {
		t.Errorf("service %q vip %v", s.String(), s.VIPPort())
	}
	if a, b := s.RealServers[0].Address, s.RealServers[1].Address; a != "198.18.0.2:8080" || b != "198.18.0.3:9000" {
		t.Errorf("real servers %s %s: a bare RIP takes the first port", a, b)
	}
	tcp, err := Parse("t.yaml", []byte(good))
	if err != nil || len(tcp.Services[0].Tests()) != 1 || tcp.Services[0].Tests()[0].Dst.String() != "203.0.113.100:80" {
		t.Errorf("tcp service tests: %v %v", tcp.Services[0].Tests(), err)
	}
}

func TestFwmarkPortsBad(t *testing.T) {
	for _, c := range []struct{ name, yaml, want string }{
		{"bad port", strings.Replace(fwmarkGood, "udp/500", "udp/x", 1), `t.yaml:7:19: port "udp/x"`},
		{"bad proto", strings.Replace(fwmarkGood, "udp/500", "sctp/5", 1), `t.yaml:7:19: port "sctp/5": protocol "sctp"`},
		{"ports on tcp", strings.Replace(good, "    proto: tcp\n", "    proto: tcp\n    ports: [81]\n", 1), `lab.yaml:10:12: ports: only for proto fwmark`},
		{"ports without vip", strings.Replace(fwmarkGood, "  - vip: 203.0.113.100\n", "  - vip: \"\"\n", 1), `t.yaml:7:12: ports need the vip`},
	} {
		t.Run(c.name, func(t *testing.T) {
			name := "t.yaml"
			if strings.HasPrefix(c.want, "lab.yaml") {
				name = "lab.yaml"
			}
			_, err := Parse(name, []byte(c.yaml))
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error %v, want prefix %q", err, c.want)
			}
		})
	}
}
