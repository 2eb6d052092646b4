package transport

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lvsdoctor/lvsdoctor/probes/agent"
	"github.com/lvsdoctor/lvsdoctor/probes/capture"
	"github.com/lvsdoctor/lvsdoctor/probes/internal/nstest"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
)

// TestNetnsSharedAgent: two namespaces served by one agent process each
// see only their own: their own namespace, addresses and sockets (a ping
// from A reaches B, and B's capture sees it), and releasing one leaves the
// other working; the last release ends the process.
func TestNetnsSharedAgent(t *testing.T) {
	testenv.RequireRoot(t)
	p := nstest.NewPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := Dial(ctx, "netns:"+p.A.Name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Dial(ctx, "netns:"+p.B.Name)
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	if a.Hello.PID != b.Hello.PID {
		t.Errorf("two agent processes (%d, %d), want one for both namespaces", a.Hello.PID, b.Hello.PID)
	}
	if got, want := a.Hello.NetNS, p.A.Inode(t); got != want {
		t.Errorf("A's agent reports namespace %d, want %d", got, want)
	}
	if got, want := b.Hello.NetNS, p.B.Inode(t); got != want {
		t.Errorf("B's agent reports namespace %d, want %d", got, want)
	}

	var fa, fb obs.Facts
	if err := a.Call(ctx, agent.OpFacts, obs.FactsArgs{SkipConntrack: true}, &fa); err != nil {
		t.Fatal(err)
	}
	if err := b.Call(ctx, agent.OpFacts, obs.FactsArgs{SkipConntrack: true}, &fb); err != nil {
		t.Fatal(err)
	}
	if !hasAddr(fa, p.AAddr) || hasAddr(fa, p.BAddr) {
		t.Errorf("A's facts have addresses %v, want %s and not %s", fa.Addrs, p.AAddr, p.BAddr)
	}
	if !hasAddr(fb, p.BAddr) || hasAddr(fb, p.AAddr) {
		t.Errorf("B's facts have addresses %v, want %s and not %s", fb.Addrs, p.BAddr, p.AAddr)
	}

	var st obs.CaptureStarted
	if err := b.Call(ctx, agent.OpCaptureStart, obs.CaptureArgs{Hosts: []string{p.AAddr}}, &st); err != nil {
		t.Fatal(err)
	}
	var ping obs.Ping
	if err := a.Call(ctx, agent.OpPing, obs.PingArgs{Src: p.AAddr, Dst: p.BAddr, Count: 1, Timeout: 3 * time.Second}, &ping); err != nil {
		t.Fatal(err)
	}
	if ping.Received != 1 {
		t.Errorf("ping from A to B: %+v, want one reply", ping)
	}
	var cp obs.Capture
	if err := b.Call(ctx, agent.OpCaptureStop, obs.CaptureStopArgs{ID: st.ID}, &cp); err != nil {
		t.Fatal(err)
	}
	if err := capture.Unpack(&cp); err != nil {
		t.Fatal(err)
	}
	seen := false
	for _, pk := range cp.Packets {
		seen = seen || (pk.Proto == "icmp" && pk.Src == p.AAddr && pk.Dir == "in")
	}
	if !seen {
		t.Errorf("B's capture on %v did not see A's ping: %+v", cp.Interfaces, cp.Packets)
	}

	pid := a.Hello.PID
	if err := a.Close(); err != nil {
		t.Errorf("close A: %v", err)
	}
	var again obs.RouteGet
	if err := b.Call(ctx, agent.OpRouteGet, obs.RouteGetArgs{Dst: p.AAddr}, &again); err != nil || again.Error != "" {
		t.Errorf("B after A was released: %v %s", err, again.Error)
	}
	if !alive(pid) {
		t.Errorf("the agent ended while B still used it")
	}
	if err := b.Close(); err != nil {
		t.Errorf("close B: %v", err)
	}
	if alive(pid) {
		t.Errorf("agent %d still runs after its last namespace was released", pid)
	}
}

// TestNetnsMissing: a namespace that does not exist is named, with the
// command that lists them, and no agent is left behind for it.
func TestNetnsMissing(t *testing.T) {
	testenv.RequireRoot(t)
	_, err := Dial(context.Background(), "netns:lvsdoctor-no-such-ns")
	if err == nil || !strings.Contains(err.Error(), `"lvsdoctor-no-such-ns" does not exist (ip netns list)`) {
		t.Fatalf("err = %v, want the missing namespace named", err)
	}
	nsAgents.mu.Lock()
	defer nsAgents.mu.Unlock()
	if len(nsAgents.list) > 0 {
		t.Errorf("an agent was started for a namespace that does not exist")
	}
}

func hasAddr(f obs.Facts, ip string) bool {
	for _, a := range f.Addrs {
		if strings.HasPrefix(a.Prefix, ip+"/") {
			return true
		}
	}
	return false
}

func alive(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// TestNetnsAgentsShared: more namespaces than one agent serves get a
// second process, never more than AgentLoad of weight on one (a heavy
// host counts for several, one of AgentLoad has a process of its own),
// and none is left once every host is closed.
func TestNetnsAgentsShared(t *testing.T) {
	testenv.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var conns []*Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	const heavy = 6
	load := map[int]int{}
	weights := []int{heavy}
	for range AgentLoad - heavy + 1 {
		weights = append(weights, 1)
	}
	weights = append(weights, AgentLoad) // a process of its own
	for _, w := range weights {
		c, err := DialWith(ctx, "netns:"+nstest.New(t).Name, Options{Weight: w})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		load[c.Hello.PID] += w
	}
	if len(load) != 3 {
		t.Errorf("a weight of %d, then one of %d, on %d agent processes %v, want 3", AgentLoad+1, AgentLoad, len(load), load)
	}
	for pid, n := range load {
		if n > AgentLoad {
			t.Errorf("agent %d serves a weight of %d, more than %d", pid, n, AgentLoad)
		}
	}
	for _, c := range conns {
		if err := c.Close(); err != nil {
			t.Errorf("close %s: %v", c.Spec, err)
		}
	}
	conns = nil
	for pid := range load {
		if alive(pid) {
			t.Errorf("agent %d still runs after its hosts were closed", pid)
		}
	}
}
