package checks

import (
	"context"
	"net/netip"
	"sync"

	"github.com/lvsdoctor/lvsdoctor/checks/classify"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/agent"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
	"github.com/lvsdoctor/lvsdoctor/probes/transport"
)

type callFunc func(h *classify.Host, c *transport.Conn, op string, args, out any) bool

// runProbes is the plan of Q.1-Q.4, all started at once: on each real
// server a ping and a traceroute to the client from the RIP and `ip route
// get CIP from RIP`; on the director its routes to the client and to each
// RIP and the kernel's reverse-path verdict for the client's requests; on
// the client the test connections.
func runProbes(ctx context.Context, top *topology.Topology, in *classify.Input, conns map[string]*transport.Conn, cip netip.Addr, opt Options, call callFunc, mu *sync.Mutex) {
	var wg sync.WaitGroup
	do := func(h *classify.Host, fn func(c *transport.Conn)) {
		c := conns[h.Label]
		if c == nil || h.Error != "" {
			return
		}
		wg.Add(1)
		go func() { defer wg.Done(); fn(c) }()
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
	for _, h := range in.Hosts {
		if h.Role != classify.RoleRealServer {
			continue
		}
		rip := h.Address
		if !opt.Static {
			do(h, func(c *transport.Conn) {
				var p obs.Ping
				if call(h, c, agent.OpPing, obs.PingArgs{Src: rip, Dst: cip.String(), Count: 1, Timeout: opt.Timeout}, &p) {
					mu.Lock()
					h.Ping = &p
					mu.Unlock()
				}
			})
			do(h, func(c *transport.Conn) {
				var t obs.Trace
				if call(h, c, agent.OpTrace, obs.TraceArgs{Src: rip, Dst: cip.String(), MaxHops: 8, Timeout: opt.Timeout}, &t) {
					mu.Lock()
					h.Trace = &t
					mu.Unlock()
				}
			})
		}
		routeGet(h, obs.RouteGetArgs{Dst: cip.String(), Src: rip})
	}
	if d := in.Hosts[top.Director.Label()]; d != nil {
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
	for i, s := range top.Services {
		in.Services[i].Service = s
		cl := in.Hosts[top.Client.Label()]
		if opt.Static || cl == nil || (s.Proto != "tcp" && s.Proto != "udp") {
			continue
		}
		n := 2 * len(s.RealServers)
		if n > opt.MaxConnections {
			n = opt.MaxConnections
		}
		do(cl, func(c *transport.Conn) {
			var res obs.Connect
			args := obs.ConnectArgs{Proto: s.Proto, Src: cip.String(), Dst: s.VIP, Count: n, Timeout: opt.Timeout}
			if err := c.Call(ctx, agent.OpConnect, args, &res); err != nil {
				in.Services[i].Error = err.Error()
				return
			}
			in.Services[i].Conns = res.Conns
		})
	}
	wg.Wait()
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
