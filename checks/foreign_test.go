package checks_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvsdoctor/lvsdoctor/checks"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
)

// foreign is an LVS-NAT cluster that lvsdoctor did not build: namespaces
// made with plain `ip` and `nft`, other addresses (192.0.2.0/24 public,
// 198.19.10.0/24 private), other interface names, three real servers with
// wrr weights 3:2:1, and a real port (8080) that differs from the virtual
// one (80). The check only gets a topology file written by hand.
type foreign struct {
	t       *testing.T
	prefix  string
	bin     string
	servers map[string]*exec.Cmd
}

const foreignTopology = `# written by hand, as an operator would
client:
  name: laptop
  host: netns:{{P}}cl
  address: 192.0.2.50
director:
  name: lb1
  host: netns:{{P}}lb
services:
  - vip: 192.0.2.80:80
    proto: tcp
    scheduler: wrr
    realservers:
      - {name: web-a, host: "netns:{{P}}wa", address: "198.19.10.11:8080", weight: 3}
      - {name: web-b, host: "netns:{{P}}wb", address: "198.19.10.12:8080", weight: 2}
      - {name: web-c, host: "netns:{{P}}wc", address: "198.19.10.13:8080", weight: 1}
`

func (f *foreign) run(args ...string) {
	f.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		f.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (f *foreign) ns(n string) string { return f.prefix + n }

// in runs a command inside one of the cluster's namespaces.
func (f *foreign) in(n string, args ...string) {
	f.t.Helper()
	f.run(append([]string{"ip", "netns", "exec", f.ns(n)}, args...)...)
}

func (f *foreign) nft(n, script string) {
	f.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", f.ns(n), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		f.t.Fatalf("nft in %s: %v\n%s\n%s", n, err, out, script)
	}
}

var backends = []struct{ name, ip, iface string }{
	{"wa", "198.19.10.11", "enp1s0"},
	{"wb", "198.19.10.12", "ens4"},
	{"wc", "198.19.10.13", "eth7"},
}

func (f *foreign) build() {
	all := []string{"sw", "cl", "lb", "wa", "wb", "wc"}
	f.t.Cleanup(f.teardown)
	for _, n := range all {
		f.run("ip", "netns", "add", f.ns(n))
		f.in(n, "ip", "link", "set", "lo", "up")
		f.in(n, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
			"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	f.in("sw", "ip", "link", "add", "wan", "type", "bridge")
	f.in("sw", "ip", "link", "add", "lan", "type", "bridge")
	f.in("sw", "ip", "link", "set", "wan", "up")
	f.in("sw", "ip", "link", "set", "lan", "up")
	// link creates a veth whose host end is iface in n, and whose peer is
	// a port of bridge br in the switch namespace.
	link := func(n, iface, br, addr string) {
		port := "p-" + n + "-" + iface
		if len(port) > 15 {
			port = port[:15]
		}
		f.in("sw", "ip", "link", "add", port, "type", "veth", "peer", "name", iface, "netns", f.ns(n))
		f.in("sw", "ip", "link", "set", port, "master", br, "up")
		f.in(n, "ip", "addr", "add", addr, "dev", iface)
		f.in(n, "ip", "link", "set", iface, "up")
	}
	link("cl", "ens3", "wan", "192.0.2.50/24")
	link("lb", "wan0", "wan", "192.0.2.1/24")
	f.in("lb", "ip", "addr", "add", "192.0.2.80/32", "dev", "wan0")
	link("lb", "lan0", "lan", "198.19.10.1/24")
	f.in("lb", "sysctl", "-qw", "net.ipv4.ip_forward=1")
	for _, b := range backends {
		link(b.name, b.iface, "lan", b.ip+"/24")
		f.in(b.name, "ip", "route", "add", "default", "via", "198.19.10.1")
		f.startServer(b.name, b.ip)
	}
	f.nft("lb", `
table ip lvs {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 192.0.2.80 tcp dport 80 counter dnat ip addr . port to numgen inc mod 6 map { 0 : 198.19.10.11 . 8080, 1 : 198.19.10.11 . 8080, 2 : 198.19.10.11 . 8080, 3 : 198.19.10.12 . 8080, 4 : 198.19.10.12 . 8080, 5 : 198.19.10.13 . 8080 }
	}
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 198.19.10.0/24 oifname "wan0" counter masquerade
	}
}`)
	f.waitReady()
}

func (f *foreign) startServer(name, ip string) {
	srv := exec.Command("ip", "netns", "exec", f.ns(name), f.bin, "lab", "serve", "--http", ip+":8080", "--server-name", name)
	if err := srv.Start(); err != nil {
		f.t.Fatal(err)
	}
	if f.servers == nil {
		f.servers = map[string]*exec.Cmd{}
	}
	f.servers[name] = srv
	f.t.Cleanup(func() { f.stopServer(name) })
}

func (f *foreign) stopServer(name string) {
	if srv := f.servers[name]; srv != nil {
		srv.Process.Kill()
		srv.Wait()
		delete(f.servers, name)
	}
}

// waitReady waits until each backend answers through the VIP: links come
// up asynchronously.
func (f *foreign) waitReady() {
	deadline := time.Now().Add(10 * time.Second)
	for _, b := range backends {
		for {
			out, err := exec.Command("ip", "netns", "exec", f.ns("lb"), "bash", "-c",
				fmt.Sprintf("exec 3<>/dev/tcp/%s/8080 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && head -c 12 <&3", b.ip)).CombinedOutput()
			if err == nil && strings.Contains(string(out), "HTTP") {
				break
			}
			if time.Now().After(deadline) {
				f.t.Fatalf("backend %s not ready: %v %s", b.name, err, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (f *foreign) teardown() {
	for _, n := range []string{"sw", "cl", "lb", "wa", "wb", "wc"} {
		exec.Command("ip", "netns", "del", f.ns(n)).Run()
	}
}

func (f *foreign) topology() *topology.Topology {
	path := filepath.Join(f.t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(foreignTopology, "{{P}}", f.prefix)), 0o644); err != nil {
		f.t.Fatal(err)
	}
	top, err := topology.Load(path)
	if err != nil {
		f.t.Fatal(err)
	}
	return top
}

// TestForeignCluster checks a cluster built by hand, healthy and with
// faults injected by hand, one after the other and two at once.
func TestForeignCluster(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "ip", "iproute2")
	testenv.RequireCommand(t, "nft", "nftables")
	b := make([]byte, 2)
	rand.Read(b)
	f := &foreign{t: t, prefix: "lvsdf" + hex.EncodeToString(b) + "-", bin: os.Getenv("LVSDOCTOR_AGENT")}
	f.build()
	top := f.topology()

	steps := []struct {
		name   string
		break_ func()
		mend   func()
		want   string
	}{
		{"healthy", func() {}, func() {}, ""},
		{"web-b wrong gateway", func() {
			f.in("wb", "ip", "route", "replace", "default", "via", "198.19.10.250")
		}, func() {
			f.in("wb", "ip", "route", "replace", "default", "via", "198.19.10.1")
		}, "rs-wrong-gateway@web-b"},
		{"forward drop of web-c's replies, in an inet table of its own", func() {
			f.nft("lb", `table inet filter {
	chain forward {
		type filter hook forward priority filter; policy accept;
		ip saddr 198.19.10.13 tcp sport 8080 counter drop comment "ops ticket 4711"
	}
}`)
		}, func() { f.in("lb", "nft", "delete", "table", "inet", "filter") }, "director-firewall-drops-replies@lb1"},
		{"nothing listens on web-c", func() { f.stopServer("wc") }, func() {
			f.startServer("wc", "198.19.10.13")
			f.waitReady()
		}, "rs-no-listener@web-c"},
		{"strict rp_filter with the route to the client on the private side", func() {
			f.in("lb", "ip", "route", "add", "192.0.2.50/32", "via", "198.19.10.254", "dev", "lan0", "onlink")
			f.in("lb", "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1")
		}, func() {
			f.in("lb", "ip", "route", "del", "192.0.2.50/32")
			f.in("lb", "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0")
		}, "director-rpfilter-requests@lb1"},
		{"ip_forward off", func() {
			f.in("lb", "sysctl", "-qw", "net.ipv4.ip_forward=0")
		}, func() { f.in("lb", "sysctl", "-qw", "net.ipv4.ip_forward=1") }, "director-no-forwarding@lb1"},
		{"two at once: no masquerade and web-a wrong gateway", func() {
			f.in("lb", "nft", "flush", "chain", "ip", "lvs", "post")
			f.in("wa", "ip", "route", "del", "default")
		}, func() {
			f.in("lb", "nft", "add", "rule", "ip", "lvs", "post", "ip", "saddr", "198.19.10.0/24", "oifname", "wan0", "masquerade")
			f.in("wa", "ip", "route", "add", "default", "via", "198.19.10.1")
		}, "director-no-masquerade@lb1,rs-wrong-gateway@web-a"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.break_()
			defer s.mend()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, in := checks.Run(ctx, top, checks.Options{Version: "test"})
			var got []string
			for _, fd := range r.Findings {
				if fd.Severity == "error" {
					got = append(got, fd.ID+"@"+fd.Host)
				}
			}
			if strings.Join(got, ",") != s.want {
				dump(t, r, in)
				t.Fatalf("findings %v, want %s", got, s.want)
			}
			if s.want == "" && r.Verdict != "healthy" {
				dump(t, r, in)
				t.Fatalf("verdict %s on the healthy cluster", r.Verdict)
			}
		})
	}
}
