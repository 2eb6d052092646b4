package lab

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/vishvananda/netlink"
)

var pasv = regexp.MustCompile(`\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)`)

// ftpList logs in to addr from inside namespace, asks PASV, lists over
// the data connection, and returns the 227 reply and the listed line.
// Everything runs on the namespace's thread (RunIn), one step after the
// other.
func ftpList(namespace, addr string) (reply, line string, err error) {
	err = RunIn(namespace, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		r := bufio.NewReader(c)
		expect := func(cmd, code string) (string, error) {
			if cmd != "" {
				if _, err := fmt.Fprintf(c, "%s\r\n", cmd); err != nil {
					return "", err
				}
			}
			ln, err := r.ReadString('\n')
			if err != nil {
				return ln, err
			}
			if !strings.HasPrefix(ln, code) {
				return ln, fmt.Errorf("%s: got %q, want %s", cmd, ln, code)
			}
			return strings.TrimSpace(ln), nil
		}
		for _, s := range [][2]string{{"", "220"}, {"USER anonymous", "331"}, {"PASS x", "230"}} {
			if _, err := expect(s[0], s[1]); err != nil {
				return err
			}
		}
		if reply, err = expect("PASV", "227"); err != nil {
			return err
		}
		m := pasv.FindStringSubmatch(reply)
		if m == nil {
			return fmt.Errorf("no address in %q", reply)
		}
		p1, _ := strconv.Atoi(m[5])
		p2, _ := strconv.Atoi(m[6])
		d, err := net.DialTimeout("tcp", net.JoinHostPort(strings.Join(m[1:5], "."), strconv.Itoa(p1<<8|p2)), time.Second)
		if err != nil {
			return fmt.Errorf("data connection (%s): %w", reply, err)
		}
		defer d.Close()
		_ = d.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := expect("NLST", "150"); err != nil {
			return err
		}
		b, err := bufio.NewReader(d).ReadString('\n')
		if err != nil {
			return fmt.Errorf("data: %w", err)
		}
		line = strings.TrimSpace(b)
		_, err = expect("", "226")
		return err
	})
	return reply, line, err
}

// fetchFrom does n HTTP GETs of addr from role's namespace.
func fetchFrom(st *State, role, addr string, n int) (map[string]int, []error) {
	m := map[string]int{}
	var errs []error
	for i := 0; i < n; i++ {
		_, body, err := HTTPGet(st.Host(role).Namespace, addr, time.Second)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m[strings.TrimSpace(body)]++
	}
	return m, errs
}

func TestFTPThroughTheHelper(t *testing.T) {
	st := upTest(t, Options{RealServers: 2})
	reply, line, err := ftpList(st.Host(RoleClient).Namespace, VIP.String()+":21")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(reply, "(203,0,113,100,") || (line != "rs1" && line != "rs2") {
		t.Errorf("PASV %q, listed %q: want the VIP in the 227 reply (rewritten by the helper) and a real server's name", reply, line)
	}
	if err := Inject(context.Background(), st.Name, "director-ftp-helper-missing", "", ""); err != nil {
		t.Fatal(err)
	}
	reply, _, err = ftpList(st.Host(RoleClient).Namespace, VIP.String()+":21")
	if err == nil || !strings.Contains(reply, "(198,18,0,") {
		t.Errorf("without the helper: PASV %q, err %v; want a RIP in the 227 reply and a failed data connection", reply, err)
	}
	if err := Clear(context.Background(), st.Name); err != nil {
		t.Fatal(err)
	}
	if reply, _, err := ftpList(st.Host(RoleClient).Namespace, VIP.String()+":21"); err != nil {
		t.Errorf("after clear: %q %v", reply, err)
	}
}

func TestFwmarkService(t *testing.T) {
	st := upTest(t, Options{RealServers: 2})
	addr := fmt.Sprintf("%s:%d", VIP, MarkPort)
	m, errs := fetchFrom(st, RoleClient, addr, 4)
	if len(errs) > 0 || m["rs1"] != 2 || m["rs2"] != 2 {
		t.Fatalf("fwmark service: answers %v, errors %v", m, errs)
	}
	ctx := context.Background()
	for _, v := range []string{"removed", "wrong-port"} {
		if err := Inject(ctx, st.Name, "fwmark-not-marked", "", v); err != nil {
			t.Fatal(err)
		}
		if _, errs := fetchFrom(st, RoleClient, addr, 1); len(errs) != 1 {
			t.Errorf("%s: the unmarked service still answers", v)
		}
		if err := Clear(ctx, st.Name); err != nil {
			t.Fatal(err)
		}
		if m, errs := fetchFrom(st, RoleClient, addr, 2); len(errs) > 0 || len(m) != 2 {
			t.Errorf("after clear: %v %v", m, errs)
		}
	}
}

func TestFlatStateless(t *testing.T) {
	st := upTest(t, Options{RealServers: 2, Topology: TopologyFlat, Datapath: DatapathNftStateless})
	d := st.Host(RoleDirector)
	if len(d.Ifaces) != 1 || len(d.Ifaces[0].Addrs) != 3 {
		t.Fatalf("one-arm director: ifaces %+v", d.Ifaces)
	}
	// A hash of the client's address and port picks the real server:
	// every service reaches both within a few tries.
	for _, port := range []int{80, MarkPort} {
		m, errs := fetchFrom(st, RoleClient, fmt.Sprintf("%s:%d", VIP, port), 16)
		if len(errs) > 0 || m["rs1"] == 0 || m["rs2"] == 0 {
			t.Errorf("port %d: answers %v, errors %v", port, m, errs)
		}
	}
	if err := RunIn(st.Host(RoleClient).Namespace, func() error { return reachOnce("udp", VIP.String()+":53", time.Second) }); err != nil {
		t.Errorf("udp echo via the VIP: %v", err)
	}
	if err := rsReachesClient(st, "rs1"); err != nil {
		t.Errorf("rs1 cannot reach the client (masquerade): %v", err)
	}
	if err := checkSysctlIn(st, RoleDirector, "net.ipv4.conf.eth0.send_redirects", "0"); err != nil {
		t.Error(err)
	}

	// The fault: redirects reach the real servers, which then route the
	// client around the director; Clear undoes both.
	ctx := context.Background()
	if err := Inject(ctx, st.Name, "icmp-redirect-bypass", "", ""); err != nil {
		t.Fatal(err)
	}
	err := RunIn(st.Host(RoleClient).Namespace, func() error {
		for i := 0; i < 8; i++ {
			_ = reachOnce("udp", VIP.String()+":53", 100*time.Millisecond)
			time.Sleep(50 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	redirected := 0
	for _, rs := range st.RealServerRoles() {
		if redirectedRoute(t, st, rs) {
			redirected++
		}
	}
	if redirected == 0 {
		t.Fatal("no real server has a redirected route to the client")
	}
	if err := Clear(ctx, st.Name); err != nil {
		t.Fatal(err)
	}
	for _, rs := range st.RealServerRoles() {
		if redirectedRoute(t, st, rs) {
			t.Errorf("%s: redirected route left after clear", rs)
		}
	}
	if err := checkSysctlIn(st, RoleDirector, "net.ipv4.conf.all.send_redirects", "0"); err != nil {
		t.Error(err)
	}
}

func checkSysctlIn(st *State, role, key, want string) error {
	e, err := open(st)
	if err != nil {
		return err
	}
	defer e.close()
	return e.checkSysctl(role, key, want)
}

// redirectedRoute says `ip route get CIP from RIP` on rs shows a route
// learnt from an ICMP redirect.
func redirectedRoute(t *testing.T, st *State, rs string) bool {
	t.Helper()
	var flags int
	err := RunIn(st.Host(rs).Namespace, func() error {
		rip, _ := st.ifaceAddr(rs, "eth0")
		routes, err := netlink.RouteGetWithOptions(st.ClientIP(), &netlink.RouteGetOptions{SrcAddr: rip})
		if err == nil && len(routes) > 0 {
			flags = routes[0].Flags
		}
		return err
	})
	if err != nil {
		t.Fatalf("%s: route get: %v", rs, err)
	}
	return flags&0x00040000 != 0 // RTCF_REDIRECTED
}

func TestDirectorRPFilterRepliesAndClear(t *testing.T) {
	st := upTest(t, Options{RealServers: 2})
	ctx := context.Background()
	if err := Inject(ctx, st.Name, "director-rpfilter-replies", "", ""); err != nil {
		t.Fatal(err)
	}
	m, _ := fetch(st, 4)
	if m["rs1"] != 0 || m["rs2"] != 2 {
		t.Errorf("answers %v: want rs1's replies dropped, rs2's through", m)
	}
	if err := Clear(ctx, st.Name); err != nil {
		t.Fatal(err)
	}
	mustHealthy(t, st)
	e, err := open(st)
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	dn, _ := e.nl(RoleDirector)
	defer dn.Close()
	if _, err := dn.LinkByName(RPFilterRepliesIface); err == nil {
		t.Error("eth2 left after clear")
	}
}

func TestClientOnDirector(t *testing.T) {
	st := upTest(t, Options{RealServers: 2, Topology: TopologyClientOnDirector})
	ns, cip := st.TopologyClient()
	if ns != st.Host(RoleDirector).Namespace || !cip.Equal(DirPubIP) {
		t.Fatalf("topology client %s %s, want the director", ns, cip)
	}
	// The director's own connections are balanced too.
	for _, port := range []int{80, MarkPort} {
		m, errs := fetchFrom(st, RoleDirector, fmt.Sprintf("%s:%d", VIP, port), 4)
		if len(errs) > 0 || m["rs1"] != 2 || m["rs2"] != 2 {
			t.Errorf("from the director, port %d: %v %v", port, m, errs)
		}
	}
	if _, line, err := ftpList(ns, VIP.String()+":21"); err != nil || line == "" {
		t.Errorf("ftp from the director: %q %v", line, err)
	}
	if err := Inject(context.Background(), st.Name, "client-on-director", "", ""); err != nil {
		t.Error(err)
	}
}

func TestInfraFaultsNeedTheirLab(t *testing.T) {
	st := upTest(t, Options{RealServers: 1})
	for _, id := range []string{"icmp-redirect-bypass", "client-on-director"} {
		if err := Inject(context.Background(), st.Name, id, "", ""); err == nil {
			t.Errorf("%s injected into a default lab", id)
		}
	}
}

func TestInfraTopologyFiles(t *testing.T) {
	for _, o := range []Options{
		{Name: "lvsd", RealServers: 2, Datapath: DatapathNft, Topology: TopologyNAT},
		{Name: "lvsd", RealServers: 2, Datapath: DatapathNftStateless, Topology: TopologyFlat},
		{Name: "lvsd", RealServers: 2, Datapath: DatapathNft, Topology: TopologyClientOnDirector},
	} {
		st := plan(o)
		var b strings.Builder
		if err := st.WriteTopology(&b); err != nil {
			t.Fatal(err)
		}
		top, err := topology.Parse("lab.yaml", []byte(b.String()))
		if err != nil {
			t.Fatalf("%s/%s: %v\n%s", o.Topology, o.Datapath, err, b.String())
		}
		var svcs []string
		for _, s := range top.Services {
			svcs = append(svcs, s.String())
		}
		want := "tcp 203.0.113.100:80 udp 203.0.113.100:53 tcp 203.0.113.100:21 fwmark 1"
		if o.Datapath == DatapathNftStateless {
			want = "tcp 203.0.113.100:80 udp 203.0.113.100:53 fwmark 1" // no FTP without conntrack
		}
		if got := strings.Join(svcs, " "); got != want {
			t.Errorf("%s/%s: services %q, want %q", o.Topology, o.Datapath, got, want)
		}
		fw := top.Services[len(top.Services)-1]
		if ts := fw.Tests(); len(ts) != 1 || ts[0].Proto != "tcp" || ts[0].Dst.String() != "203.0.113.100:8080" || fw.RealServers[0].Address != "198.18.0.2:8080" {
			t.Errorf("fwmark service: tests %v, real server %s", ts, fw.RealServers[0].Address)
		}
		if o.Topology == TopologyClientOnDirector && (top.Client.Host != "netns:lvsd-director" || top.Client.Address != "203.0.113.1") {
			t.Errorf("client-on-director: client %+v", top.Client)
		}
	}
}
