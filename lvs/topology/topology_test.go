package topology

import (
	"fmt"
	"strings"
	"testing"
)

const good = `client:
  name: client
  host: netns:lvsd-client
  address: 203.0.113.10
director:
  host: netns:lvsd-director
services:
  - vip: 203.0.113.100:80
    proto: tcp
    scheduler: wrr
    realservers:
      - address: 198.18.0.2:80
        name: rs1
        host: netns:lvsd-rs1
        weight: 3
      - address: 198.18.0.3
        host: user@rs2.example
`

func TestParseGood(t *testing.T) {
	top, err := Parse("lab.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	s := top.Services[0]
	if s.String() != "tcp 203.0.113.100:80" || s.Scheduler != "wrr" {
		t.Errorf("service = %q %q", s.String(), s.Scheduler)
	}
	if got := s.RealServers[1].Address; got != "198.18.0.3:80" {
		t.Errorf("bare RIP takes the VPORT: got %q", got)
	}
	if s.RealServers[0].W() != 3 || s.RealServers[1].W() != 1 || s.RealServers[1].Forward != "masq" {
		t.Errorf("defaults wrong: %+v", s.RealServers)
	}
	if s.RealServers[1].Label() != "user@rs2.example" {
		t.Errorf("label defaults to host string, got %q", s.RealServers[1].Label())
	}
}

func TestParseBad(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown field", strings.Replace(good, "    scheduler: wrr", "    schedular: wrr", 1),
			`lab.yaml:10:5: unknown field "schedular"`},
		{"bad vip", strings.Replace(good, "203.0.113.100:80", "203.0.113.300:80", 1),
			`lab.yaml:8:10: vip "203.0.113.300:80"`},
		{"bad rip", strings.Replace(good, "198.18.0.2:80", "198.18.0.2:http", 1),
			`lab.yaml:12:18: address "198.18.0.2:http"`},
		{"missing director", strings.Replace(good, "director:\n  host: netns:lvsd-director\n", "", 1),
			`lab.yaml: missing director`},
		{"bad proto", strings.Replace(good, "proto: tcp", "proto: sctp", 1),
			`lab.yaml:9:12: proto "sctp": valid are tcp, udp, fwmark`},
		{"bad host scheme", strings.Replace(good, "netns:lvsd-rs1", "docker:rs1", 1),
			`lab.yaml:14:15: host "docker:rs1": unknown scheme`},
		{"bad weight", strings.Replace(good, "weight: 3", "weight: -1", 1),
			`lab.yaml:15:17: weight -1`},
		{"empty", "", "lab.yaml: empty file"},
		{"not yaml", "client: [", "lab.yaml:1:"},
		{"bad client address", strings.Replace(good, "address: 203.0.113.10", "address: client.example", 1),
			`lab.yaml:4:12: address "client.example"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("lab.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error\n  %s\nwant prefix\n  %s", err, c.want)
			}
			if strings.Count(err.Error(), "\n") > 0 {
				t.Errorf("error is more than one line: %q", err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("client: {host: local}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		top, err := Parse("f.yaml", b)
		if err == nil && top.Director.Host == "" {
			t.Fatal("accepted a topology without director")
		}
	})
}

// BenchmarkParse50 parses what `lab up --realservers 50` writes: four
// services of fifty real servers, read before any host is reached.
func BenchmarkParse50(b *testing.B) {
	var y strings.Builder
	y.WriteString("client:\n  name: client\n  host: netns:lvsd-client\n  address: 203.0.113.10\ndirector:\n  host: netns:lvsd-director\nservices:\n")
	for i, svc := range []string{"vip: 203.0.113.100:80\n    proto: tcp", "vip: 203.0.113.100:53\n    proto: udp", "vip: 203.0.113.100:21\n    proto: tcp", "vip: 203.0.113.100\n    proto: fwmark\n    mark: 1\n    ports: [8080]"} {
		port := []int{80, 53, 21, 8080}[i]
		fmt.Fprintf(&y, "  - %s\n    scheduler: rr\n    persistent: false\n    realservers:\n", svc)
		for rs := 1; rs <= 50; rs++ {
			fmt.Fprintf(&y, "      - address: 198.18.0.%d:%d\n        name: rs%d\n        host: netns:lvsd-rs%d\n        forward: masq\n        weight: 1\n", rs+1, port, rs, rs)
		}
	}
	data := []byte(y.String())
	if _, err := Parse("lab.yaml", data); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("lab.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
