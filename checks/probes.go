package checks

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/lvsdoctor/lvsdoctor/checks/classify"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/agent"
	"github.com/lvsdoctor/lvsdoctor/probes/capture"
	"github.com/lvsdoctor/lvsdoctor/probes/connect"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
	"github.com/lvsdoctor/lvsdoctor/probes/transport"
)

type callFunc func(h *classify.Host, c *transport.Conn, op string, args, out any) bool

// realServers lists each real server once (by label), in topology order:
// the hosts Q.1 and Q.2 run on, in the order the classifier reports them
// and Plan lists them.
func realServers(top *topology.Topology) []topology.Host {
	var out []topology.Host
	seen := map[string]bool{}
	for _, s := range top.Services {
		for _, r := range s.RealServers {
			if !seen[r.Label()] {
				seen[r.Label()] = true
				out = append(out, r.AsHost())
			}
		}
	}
	return out
}

// runProbes is the plan of Q.1-Q.4, all started at once: on each real
// server a ping and a traceroute to the client from the RIP and `ip route
// get CIP from RIP`; on the director its routes to the client and to each
// RIP and the kernel's reverse-path verdict for the client's requests; on
// the client the test connections. ev hears Q.1 and Q.2 land as their
// probes return, and Q.3 and Q.4 start.
func runProbes(ctx context.Context, top *topology.Topology, in *classify.Input, conns map[string]*transport.Conn, cip netip.Addr, opt Options, call callFunc, mu *sync.Mutex, ev *emitter) {
	var wg sync.WaitGroup
	do := func(h *classify.Host, fn func(c *transport.Conn)) bool {
		c := conns[h.Label]
		if c == nil || h.Error != "" {
			return false
		}
		wg.Add(1)
		go func() { defer wg.Done(); fn(c) }()
		return true
	}
	addRG := func(h *classify.Host, rg obs.RouteGet) {
		mu.Lock()
		h.RouteGets = append(h.RouteGets, rg)
		mu.Unlock()
	}
	routeGet := func(h *classify.Host, args obs.RouteGetArgs) {
		do(h, func(c *transport.Conn) {
			var rg obs.RouteGet
			if call(h, c, agent.OpRouteGet, args, &rg) {
				rg.Dst, rg.Src, rg.Iif = args.Dst, args.Src, args.Iif
				addRG(h, rg)
			}
		})
	}
	d := in.Hosts[top.Director.Label()]
	for _, rh := range realServers(top) {
		h := in.Hosts[rh.Label()]
		if h == nil || h.Role != classify.RoleRealServer {
			continue
		}
		rip := h.Address
		if !opt.Static {
			ripAddr, _ := netip.ParseAddr(rip)
			step := func(id string) Event { return Event{Step: id, Host: h.Label} }
			do(h, func(c *transport.Conn) {
				e := step("Q1")
				e.State, e.Summary = StateRunning, fmt.Sprintf("ping -n -c1 -I %s %s", rip, cip)
				ev.emit(e)
				var p obs.Ping
				if call(h, c, agent.OpPing, obs.PingArgs{Src: rip, Dst: cip.String(), Count: 1, Timeout: opt.Timeout}, &p) {
					mu.Lock()
					h.Ping = &p
					mu.Unlock()
					e.State, e.Summary = pingOutcome(h.Label, rip, cip.String(), &p)
				} else {
					e.State, e.Summary = StateError, "ping could not run: "+hostError(h, mu)
				}
				ev.emit(e)
			})
			do(h, func(c *transport.Conn) {
				e := step("Q2")
				e.State, e.Summary = StateRunning, fmt.Sprintf("traceroute -n -s %s %s", rip, cip)
				ev.emit(e)
				var t obs.Trace
				if call(h, c, agent.OpTrace, obs.TraceArgs{Src: rip, Dst: cip.String(), MaxHops: 8, Timeout: opt.Timeout}, &t) {
					mu.Lock()
					h.Trace = &t
					st, sum := classify.TraceStep(d, h, ripAddr, cip)
					mu.Unlock()
					e.State, e.Summary = State(st), sum
				} else {
					e.State, e.Summary = StateError, "traceroute could not run: "+hostError(h, mu)
				}
				ev.emit(e)
			})
		}
		routeGet(h, obs.RouteGetArgs{Dst: cip.String(), Src: rip})
	}
	if d != nil {
		routeGet(d, obs.RouteGetArgs{Dst: cip.String()})
		seen := map[string]bool{}
		for _, s := range top.Services {
			for _, r := range s.RealServers {
				a := r.AddrPort().Addr().String()
				if !seen[a] {
					seen[a] = true
					routeGet(d, obs.RouteGetArgs{Dst: a})
				}
			}
			if ing := ingressGuess(d, cip, s.VIPPort().Addr()); ing != "" {
				routeGet(d, obs.RouteGetArgs{Dst: s.VIPPort().Addr().String(), Src: cip.String(), Iif: ing})
			}
		}
	}
	in.Services = make([]classify.ServiceRun, len(top.Services))
	cl := in.Hosts[top.Client.Label()]
	redirects := false
	if d != nil {
		redirects = redirectRisk(d, top, cip)
	}
	type slot struct {
		svc  int
		res  obs.Connect
		err  error
		args obs.ConnectArgs
	}
	var slots []*slot
	traffic := !opt.Static && cl != nil
	for i, s := range top.Services {
		in.Services[i].Service = s
		if traffic && len(s.Tests()) == 0 {
			in.Services[i].Error = fmt.Sprintf("%s names no VIP and ports, so which traffic its mark catches is unknown: give vip: and ports: (e.g. ports: [8080]) to test it", s)
		}
	}
	if traffic {
		for _, t := range trafficPlan(top, cip, redirects, opt) {
			slots = append(slots, &slot{svc: t.Service, args: t.ConnectArgs})
		}
	}
	// Q.3 and Q.4 of a service run while its test connections do; once
	// the last of them returned, the client's side of the story is known
	// (answered or not) and the rest waits for the captures.
	pending := map[int]int{}
	for _, sl := range slots {
		pending[sl.svc]++
	}
	var pmu sync.Mutex
	finished := func(svc int) {
		pmu.Lock()
		pending[svc]--
		last := pending[svc] == 0
		pmu.Unlock()
		if !last {
			return
		}
		n, ok := 0, 0
		var failed string
		for _, sl := range slots {
			if sl.svc != svc {
				continue
			}
			if sl.err != nil {
				failed = sl.err.Error()
			}
			for _, c := range sl.res.Conns {
				n++
				if c.Result == "ok" {
					ok++
				}
			}
		}
		q3 := fmt.Sprintf("%d of %d test connections answered; reading the captures", ok, n)
		if failed != "" {
			q3 = "test connections could not run: " + failed
		}
		ev.service(top, svc, StateRunning, q3, "test connections done; reading the capture")
	}
	started := map[int]bool{}
	for _, sl := range slots {
		if !started[sl.svc] && cl != nil && conns[cl.Label] != nil && cl.Error == "" {
			started[sl.svc] = true
			ev.service(top, sl.svc, StateRunning,
				fmt.Sprintf("test connections from %s, captured on every director interface", cip),
				"capturing while the test connections run")
		}
		do(cl, func(c *transport.Conn) {
			sl.err = boundedCall(ctx, c, opt.CallTimeout, agent.OpConnect, sl.args, &sl.res)
			if lost(ctx, sl.err) {
				// Its later requests would each fail, or wait as long.
				mu.Lock()
				if cl.Error == "" {
					cl.Error = lostMidCheck(agent.OpConnect, sl.err)
				}
				mu.Unlock()
			}
			finished(sl.svc)
		})
	}
	wg.Wait()
	for _, sl := range slots {
		sr := &in.Services[sl.svc]
		if sl.err != nil {
			if sr.Error == "" {
				sr.Error = sl.err.Error()
			}
			continue
		}
		sr.Conns = append(sr.Conns, sl.res.Conns...)
	}
}

// PlannedTraffic is one burst of test connections from the client.
type PlannedTraffic struct {
	Service int // index in the topology's services
	obs.ConnectArgs
}

// TestTraffic is the test traffic a check sends from the client to the
// cluster of top (whose client address is known) when its director sends
// no ICMP redirects: what the benchmark times alone.
func TestTraffic(top *topology.Topology, opt Options) []PlannedTraffic {
	opt.defaults()
	return trafficPlan(top, top.ClientAddr(), false, opt)
}

// trafficPlan is the test traffic of runProbes: per port of each service,
// a burst of testCount connections from cip; where the director may send
// ICMP redirects (redirectRisk), also a slow TCP upload and a spaced UDP
// series.
func trafficPlan(top *topology.Topology, cip netip.Addr, redirects bool, opt Options) []PlannedTraffic {
	var out []PlannedTraffic
	for i, s := range top.Services {
		n := testCount(s, opt)
		for _, t := range s.Tests() {
			args := obs.ConnectArgs{Proto: t.Proto, Src: cip.String(), Dst: t.Dst.String(), Count: n, Timeout: opt.Timeout}
			if t.Proto == "tcp" && t.Dst.Port() == ftpPort {
				args.App = connect.AppFTP
			}
			out = append(out, PlannedTraffic{i, args})
			if redirects && t.Proto == "tcp" && args.App == "" {
				// The TCP form: a slow upload. The real server acts on a
				// redirect for an established connection while it waits
				// in read, so its acknowledgements of the trickled lines
				// show the redirect taking effect.
				slow := args
				slow.Count = min(2*len(s.RealServers), opt.MaxConnections)
				slow.Payload, slow.Trickle = trickleRequest, redirectGap
				out = append(out, PlannedTraffic{i, slow})
			}
			if redirects && t.Proto == "udp" {
				// A one-arm director that sends redirects: a burst shows
				// one redirect per real server, which the real server
				// only acts on once it has resolved the client's address.
				// Exchanges spaced wider than the kernel's redirect
				// backoff (20 ms << n) show the replies going around
				// the director.
				series := args
				series.Count, series.Gap = redirectSeries, redirectGap
				out = append(out, PlannedTraffic{i, series})
			}
		}
	}
	return out
}

// Test traffic beyond one burst per service.
const (
	// ftpPort: a TCP service on it gets an FTP test (PASV and a data
	// connection) instead of an HTTP request.
	ftpPort = 21
	// redirectSeries exchanges, redirectGap apart, go to a UDP service
	// where the director may send ICMP redirects (redirectRisk).
	redirectSeries = 8
	redirectGap    = 50 * time.Millisecond
)

// trickleRequest is the slow upload's payload: an HTTP request sent a line
// at a time (obs.ConnectArgs.Trickle).
const trickleRequest = "GET / HTTP/1.0\r\nHost: lvsdoctor\r\nX-Lvsdoctor-Slow: 1\r\nX-Lvsdoctor-Slow: 2\r\nX-Lvsdoctor-Slow: 3\r\nX-Lvsdoctor-Slow: 4\r\nX-Lvsdoctor-Slow: 5\r\n\r\n"

// testCount is how many test connections go to each port of a service:
// two per real server, so that round robin reaches each twice; eight per
// real server where a hash of the client's address and port picks it (sh,
// mh), so that each is reached with near certainty; and under wrr at
// least one whole weighted cycle, since a light server comes last in it
// (weights 10 and 1: the eleventh connection is the first to reach the
// second). MaxConnections caps it.
func testCount(s topology.Service, opt Options) int {
	per := 2
	if s.Scheduler == "sh" || s.Scheduler == "mh" {
		per = 8
	}
	n := per * len(s.RealServers)
	if s.Scheduler == "wrr" {
		n = max(n, wrrCycle(s.RealServers))
	}
	return min(n, opt.MaxConnections)
}

// captureRing is the kernel buffer (obs.CaptureArgs.Ring) each interface
// of h captures into: the default, but half of it on a real server that
// may get no more than smallRingConns of the test connections. That ring
// keeps the default's blocks, so it lasts as long unread as the
// director's, and holds so many connections' packets even read at the end
// only. A real server's share is counted as round robin gives it (weighted
// under wrr); where another scheduler or persistence may send a service's
// connections all to one, all of them. The half is what lets one agent
// process serve a dozen real servers and more within its 32 MiB.
func captureRing(top *topology.Topology, h *classify.Host, opt Options) int {
	if h.Role != classify.RoleRealServer {
		return 0
	}
	conns := 0.0
	for _, s := range top.Services {
		total := 0
		for _, r := range s.RealServers {
			total += r.W()
		}
		for _, r := range s.RealServers {
			if r.Label() != h.Label {
				continue
			}
			n := float64(testCount(s, opt) * len(s.Tests()))
			switch {
			case s.Persistent: // every connection of a client may go to this one
			case s.Scheduler == "rr":
				n /= float64(len(s.RealServers))
			case s.Scheduler == "wrr" && total > 0:
				n = n * float64(r.W()) / float64(total)
			}
			conns += n
		}
	}
	if conns > smallRingConns {
		return 0
	}
	return capture.DefaultRing / 2
}

// smallRingConns: 64 test connections are about a thousand packets, what
// a ring of half the default holds packed (32 blocks of 8 KiB, some 40
// frames of a test packet's size each).
const smallRingConns = 64

// wrrCycle is the length of IPVS's weighted round robin cycle: each
// server's weight over the weights' greatest common divisor, summed (a
// server of weight 0 gets nothing).
func wrrCycle(rs []topology.RealServer) int {
	g := 0
	for _, r := range rs {
		g = gcd(g, r.W())
	}
	if g == 0 {
		return 0
	}
	n := 0
	for _, r := range rs {
		n += r.W() / g
	}
	return n
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// redirectRisk says, from the director's static picture, that it may send
// ICMP redirects to the real servers: it forwards their replies out of the
// interface they came in on (one-arm LVS-NAT: the interface facing the RIPs
// also faces the client or holds the VIP), and send_redirects is on there
// (effective: all OR the interface).
func redirectRisk(d *classify.Host, top *topology.Topology, cip netip.Addr) bool {
	if d.Before == nil {
		return false
	}
	for _, s := range top.Services {
		vip := s.VIPPort().Addr()
		ing := ingressGuess(d, cip, vip)
		if ing == "" {
			continue
		}
		for _, r := range s.RealServers {
			if ifaceOnSubnet(d, r.AddrPort().Addr()) != ing {
				continue
			}
			sr := d.Before.Sysctls
			if sr["net.ipv4.conf.all.send_redirects"] == "1" || sr["net.ipv4.conf."+ing+".send_redirects"] == "1" {
				return true
			}
		}
	}
	return false
}

// ifaceOnSubnet is the director interface whose connected subnet holds a.
func ifaceOnSubnet(d *classify.Host, a netip.Addr) string {
	for _, ad := range d.Before.Addrs {
		p, err := netip.ParsePrefix(ad.Prefix)
		if err == nil && p.Bits() < 32 && p.Masked().Contains(a) {
			return ad.Link
		}
	}
	return ""
}

// ingressGuess is where the client's requests should arrive on the
// director, before any packet was seen: the interface on the client's
// subnet, else the one holding the VIP.
func ingressGuess(d *classify.Host, cip, vip netip.Addr) string {
	if d.Before == nil {
		return ""
	}
	var holding string
	for _, a := range d.Before.Addrs {
		p, err := netip.ParsePrefix(a.Prefix)
		if err != nil {
			continue
		}
		if p.Bits() < 32 && p.Masked().Contains(cip) {
			return a.Link
		}
		if p.Addr() == vip && a.Link != "lo" {
			holding = a.Link
		}
	}
	return holding
}
