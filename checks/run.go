// Package checks is the checklist engine: it reaches every host of a
// topology, runs the HOWTO's Q.1-Q.4 on all of them at once, gathers what
// the probes saw into a classify.Input and turns it into a result.
//
// Time goes into waiting, not work: every probe that waits for "no answer"
// runs at the same time as all the others, so a faulty cluster costs one
// timeout, not one per probe.
package checks

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/lvsdoctor/lvsdoctor/checks/classify"
	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/agent"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
	"github.com/lvsdoctor/lvsdoctor/probes/transport"
)

// Options tune a check.
type Options struct {
	// Timeout is how long a probe waits for an answer that may never come.
	Timeout time.Duration
	// MaxConnections caps the test connections per service.
	MaxConnections int
	// Static sends no test traffic and captures nothing.
	Static bool
	// PcapDir keeps every host's capture as pcapng there.
	PcapDir string
	Strict  bool
	// Progress, when set, is told what is happening.
	Progress func(string)
	Version  string
}

func (o *Options) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 64
	}
	if o.Progress == nil {
		o.Progress = func(string) {}
	}
}

// Run checks the cluster of top.
func Run(ctx context.Context, top *topology.Topology, opt Options) (*result.Result, *classify.Input) {
	opt.defaults()
	start := time.Now()
	in := &classify.Input{Topology: top, Hosts: map[string]*classify.Host{}, Static: opt.Static}
	conns := map[string]*transport.Conn{}
	addHost := func(h topology.Host, role string) {
		l := h.Label()
		if _, ok := in.Hosts[l]; ok {
			return
		}
		in.Hosts[l] = &classify.Host{Label: l, Spec: h.Host, Role: role, Address: h.Address}
	}
	addHost(top.Client, classify.RoleClient)
	addHost(top.Director, classify.RoleDirector)
	for _, s := range top.Services {
		for _, r := range s.RealServers {
			addHost(r.AsHost(), classify.RoleRealServer)
		}
	}

	// Reach every host at once; one that cannot be reached is marked and
	// the others are still checked.
	opt.Progress(fmt.Sprintf("reaching %d hosts", len(in.Hosts)))
	var mu sync.Mutex
	each(in, func(h *classify.Host) {
		c, err := transport.Dial(ctx, h.Spec)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			h.Error = err.Error()
			return
		}
		if len(c.Hello.Missing) > 0 {
			h.Error = fmt.Sprintf("the agent lacks %v: run lvsdoctor as root", c.Hello.Missing)
		}
		conns[h.Label] = c
	})
	defer func() {
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Add(1)
			go func() { defer wg.Done(); c.Close() }()
		}
		wg.Wait()
	}()
	reach := func(fn func(h *classify.Host, c *transport.Conn)) {
		each(in, func(h *classify.Host) {
			if c := conns[h.Label]; c != nil && h.Error == "" {
				fn(h, c)
			}
		})
	}
	call := func(h *classify.Host, c *transport.Conn, op string, args, out any) bool {
		if err := c.Call(ctx, op, args, out); err != nil {
			mu.Lock()
			if h.Error == "" {
				h.Error = fmt.Sprintf("%s failed: %v", op, err)
			}
			mu.Unlock()
			return false
		}
		return true
	}

	opt.Progress("reading the static picture (addresses, routes, sysctls, rules, sockets)")
	reach(func(h *classify.Host, c *transport.Conn) {
		var f obs.Facts
		if call(h, c, agent.OpFacts, struct{}{}, &f) {
			h.Before = &f
		}
	})
	cip := clientAddress(ctx, top, in, conns)
	if cip.IsValid() && top.Client.Address == "" {
		in.Hosts[top.Client.Label()].Address = cip.String()
		top.Client.Address = cip.String()
	}

	// Captures run around all the test traffic, so Q.1's pings and Q.2's
	// traceroutes are on the wire record too.
	captures := map[string]string{}
	if !opt.Static && cip.IsValid() {
		opt.Progress("starting captures on every interface of every host")
		watch := []string{cip.String()}
		for _, s := range top.Services {
			watch = append(watch, s.VIPPort().Addr().String())
		}
		reach(func(h *classify.Host, c *transport.Conn) {
			var st obs.CaptureStarted
			args := obs.CaptureArgs{Hosts: watch, ARP: true, MaxPackets: 4000, MaxTime: 30 * time.Second, PcapDir: opt.PcapDir, Label: h.Label}
			if call(h, c, agent.OpCaptureStart, args, &st) {
				mu.Lock()
				captures[h.Label] = st.ID
				mu.Unlock()
			}
		})
	}

	if cip.IsValid() {
		opt.Progress("Q.1-Q.4: pings, traceroutes and route lookups on the real servers; test connections from the client")
		runProbes(ctx, top, in, conns, cip, opt, call, &mu)
	}

	if len(captures) > 0 {
		opt.Progress("stopping captures")
		reach(func(h *classify.Host, c *transport.Conn) {
			id, ok := captures[h.Label]
			if !ok {
				return
			}
			var cap obs.Capture
			if call(h, c, agent.OpCaptureStop, obs.CaptureStopArgs{ID: id}, &cap) {
				h.Capture = &cap
			}
		})
	}
	opt.Progress("reading counters after the test")
	reach(func(h *classify.Host, c *transport.Conn) {
		var f obs.Facts
		if call(h, c, agent.OpFacts, struct{}{}, &f) {
			h.After = &f
		}
	})

	opt.Progress("classifying")
	out := classify.Run(in)
	r := &result.Result{
		Schema: result.Schema, Version: opt.Version, Started: start,
		Datapath: out.Datapath, Steps: out.Steps, Findings: out.Findings,
		Unchecked: out.Unchecked, Journeys: out.Journeys,
	}
	if !cip.IsValid() {
		r.Unchecked = append(r.Unchecked, result.Unchecked{Host: top.Client.Label(), What: "Q.1-Q.4",
			Why: "the client's address is unknown: give client.address in the topology, or make the client reachable"})
	}
	for _, s := range top.Services {
		r.Services = append(r.Services, s.String())
	}
	if r.Steps == nil {
		r.Steps = []result.Step{}
	}
	if r.Findings == nil {
		r.Findings = []result.Finding{}
	}
	if r.Unchecked == nil {
		r.Unchecked = []result.Unchecked{}
	}
	if r.Journeys == nil {
		r.Journeys = []result.Journey{}
	}
	r.DurationMS = time.Since(start).Milliseconds()
	r.Decide(opt.Strict)
	return r, in
}

// each runs fn for every host at once and waits for all.
func each(in *classify.Input, fn func(h *classify.Host)) {
	var wg sync.WaitGroup
	for _, h := range in.Hosts {
		wg.Add(1)
		go func() { defer wg.Done(); fn(h) }()
	}
	wg.Wait()
}

// clientAddress is the CIP: from the topology, else the source the client
// would use toward the first VIP.
func clientAddress(ctx context.Context, top *topology.Topology, in *classify.Input, conns map[string]*transport.Conn) netip.Addr {
	if a := top.ClientAddr(); a.IsValid() {
		return a
	}
	c := conns[top.Client.Label()]
	if c == nil || len(top.Services) == 0 {
		return netip.Addr{}
	}
	var rg obs.RouteGet
	if err := c.Call(ctx, agent.OpRouteGet, obs.RouteGetArgs{Dst: top.Services[0].VIPPort().Addr().String()}, &rg); err != nil {
		return netip.Addr{}
	}
	a, _ := netip.ParseAddr(rg.PrefSrc)
	return a
}
