package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
	"github.com/vishvananda/netlink"
)

// upTest builds a lab for one test and removes it when the test ends.
func upTest(t *testing.T, o Options) *State {
	t.Helper()
	testenv.RequireRoot(t)
	o.Name = testName(t)
	t.Cleanup(func() {
		if err := Down(o.Name); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	start := time.Now()
	st, err := Up(context.Background(), o)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	t.Logf("lab %s up with %d real servers in %v", o.Name, o.RealServers, time.Since(start))
	return st
}

// get does an HTTP GET of the VIP from inside the namespace of role.
func get(t *testing.T, st *State, role, addr string) (string, error) {
	t.Helper()
	code, body, err := HTTPGet(st.Host(role).Namespace, addr, 2*time.Second)
	if err == nil && code != 200 {
		err = fmt.Errorf("status %d", code)
	}
	return strings.TrimSpace(body), err
}

func linkNames(t *testing.T) []string {
	ls, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var r []string
	for _, l := range ls {
		r = append(r, fmt.Sprintf("%d:%s:%s", l.Attrs().Index, l.Attrs().Name, l.Attrs().OperState))
	}
	sort.Strings(r)
	return r
}

func routeStrings(t *testing.T) []string {
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: 0}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var r []string
	for _, x := range rs {
		r = append(r, x.String())
	}
	sort.Strings(r)
	return r
}

func TestUpDownLeavesNothing(t *testing.T) {
	testenv.RequireRoot(t)
	links0, routes0 := linkNames(t), routeStrings(t)
	name := testName(t)
	t.Cleanup(func() { Down(name) })
	st, err := Up(context.Background(), Options{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	// HTTP, UDP echo, FTP and the firewall-mark service's HTTP on each.
	if len(st.Procs) != 8 {
		t.Errorf("procs = %v, want 8", st.Procs)
	}
	if _, err := Load(name); err != nil {
		t.Fatal(err)
	}
	if _, err := Up(context.Background(), Options{Name: name}); err == nil {
		t.Error("second up of the same lab succeeded")
	}
	var inodes = map[uint64]bool{}
	for _, ino := range st.Inodes {
		inodes[ino] = true
	}
	if err := Down(name); err != nil {
		t.Fatal(err)
	}
	if err := Down(name); err != nil {
		t.Fatalf("second down: %v", err)
	}
	if ns := labNamespaces(name); len(ns) > 0 {
		t.Errorf("namespaces left: %v", ns)
	}
	if p := processesIn(inodes); len(p) > 0 {
		t.Errorf("processes left: %v", p)
	}
	for _, p := range st.Procs {
		if !procZombie(p.PID) {
			t.Errorf("service process %d still runs", p.PID)
		}
	}
	if _, err := os.Stat(StateDir(name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir left: %v", err)
	}
	if l := linkNames(t); strings.Join(l, " ") != strings.Join(links0, " ") {
		t.Errorf("root links changed:\n%v\n%v", links0, l)
	}
	if r := routeStrings(t); strings.Join(r, "\n") != strings.Join(routes0, "\n") {
		t.Errorf("root routes changed:\n%v\n%v", routes0, r)
	}
}

// hits fetches the VIP n times from the client and counts answers by rs.
func hits(t *testing.T, st *State, n int) (map[string]int, []error) {
	t.Helper()
	m := map[string]int{}
	var errs []error
	for i := 0; i < n; i++ {
		b, err := get(t, st, RoleClient, VIP.String()+":80")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m[b]++
	}
	return m, errs
}

func TestWRRHitsEveryRealServer(t *testing.T) {
	st := upTest(t, Options{RealServers: 3, Weights: []int{1, 2, 3}})
	m, errs := hits(t, st, 12)
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	if m["rs1"] != 2 || m["rs2"] != 4 || m["rs3"] != 6 {
		t.Errorf("answers by rs = %v, want rs1:2 rs2:4 rs3:6", m)
	}
	// UDP echo through the VIP.
	err := RunIn(st.Host(RoleClient).Namespace, func() error {
		return reachOnce("udp", VIP.String()+":53", time.Second)
	})
	if err != nil {
		t.Errorf("udp echo via VIP: %v", err)
	}
}

func TestTopologyFile(t *testing.T) {
	st := plan(Options{Name: "lvsd", RealServers: 2, Datapath: "nft"})
	var b strings.Builder
	if err := st.WriteTopology(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"host: netns:lvsd-client", "address: 203.0.113.10", "host: netns:lvsd-director",
		"- vip: 203.0.113.100:80\n    proto: tcp\n    scheduler: rr",
		"- address: 198.18.0.3:80\n        name: rs2\n        host: netns:lvsd-rs2\n        forward: masq\n        weight: 1",
		"- vip: 203.0.113.100:53\n    proto: udp",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("topology lacks %q:\n%s", want, b.String())
		}
	}
}

// After a crash the state may be gone: Down still finds the namespaces by
// name and the processes inside them by namespace inode.
func TestDownWithoutState(t *testing.T) {
	st := upTest(t, Options{RealServers: 2})
	inodes := map[uint64]bool{}
	for _, ino := range st.Inodes {
		inodes[ino] = true
	}
	if p := processesIn(inodes); len(p) != 8 {
		t.Fatalf("processes in the lab: %v, want 8", p)
	}
	if err := os.RemoveAll(StateDir(st.Name)); err != nil {
		t.Fatal(err)
	}
	if err := Down(st.Name); err != nil {
		t.Fatal(err)
	}
	if ns := labNamespaces(st.Name); len(ns) > 0 {
		t.Errorf("namespaces left: %v", ns)
	}
	for _, p := range st.Procs {
		if !procGone(p.PID) {
			t.Errorf("process %d left", p.PID)
		}
	}
}

func TestFiftyRealServers(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	st := upTest(t, Options{RealServers: 50})
	m, errs := hits(t, st, 50)
	if len(errs) > 0 || len(m) != 50 {
		t.Errorf("50 requests reached %d real servers (errors %v)", len(m), errs)
	}
}
