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
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/lvsdoctor/lvsdoctor/checks/classify"
	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/agent"
	packets "github.com/lvsdoctor/lvsdoctor/probes/capture"
	"github.com/lvsdoctor/lvsdoctor/probes/facts"
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
	// Progress, when set, is told what is happening, a line at a time.
	Progress func(string)
	// Events, when set, hears each HOWTO step on each host go from
	// planned to running to its outcome (see Event). Calls never overlap
	// and arrive in order; the probes wait while it runs.
	Events  func(Event)
	Version string
	// CallTimeout bounds each request to a host's agent (its facts, a
	// probe, a capture's stop): a probe that hangs, or a host that stops
	// answering without closing its connection (down behind a silent
	// network), makes that host inconclusive instead of hanging the check.
	// Default callTimeout (scaled with Timeout).
	CallTimeout time.Duration
}

// callTimeout is the default bound of one agent request. The longest one
// is the test connections of a service, each bounded by Timeout, plus
// spaced exchanges and slow uploads of under a second; facts, probes and
// a capture's stop take milliseconds to a few seconds on a busy host.
func callTimeout(timeout time.Duration) time.Duration {
	return 30*time.Second + 10*timeout
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
	if o.CallTimeout <= 0 {
		o.CallTimeout = callTimeout(o.Timeout)
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
	for _, r := range realServers(top) {
		addHost(r, classify.RoleRealServer)
	}
	ev := newEmitter(opt.Events, top)
	ev.planned()

	// Every host runs its own pipeline, with barriers only where the test
	// needs them: all captures must run before the first test packet, and
	// the test must be over before any capture stops.
	var mu sync.Mutex
	dial := func(h *classify.Host) *transport.Conn {
		mu.Lock()
		c, done := conns[h.Label]
		mu.Unlock()
		if done {
			return c
		}
		o := transport.Defaults
		o.Weight = agentWeight(h.Role)
		c, err := transport.DialWith(ctx, h.Spec, o)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			h.Error = err.Error()
			conns[h.Label] = nil
			return nil
		}
		if len(c.Hello.Missing) > 0 {
			h.Error = fmt.Sprintf("the agent lacks %v: run lvsdoctor as root", c.Hello.Missing)
		}
		conns[h.Label] = c
		return c
	}
	// The hosts are let go once the last observation is in, while the
	// classifier runs (their agents' exits take as long as it does at
	// fifty real servers), and in any case before Run returns.
	var (
		closeOnce sync.Once
		closing   sync.WaitGroup
	)
	release := func() {
		closeOnce.Do(func() {
			for _, c := range conns {
				if c == nil {
					continue
				}
				closing.Add(1)
				go func() { defer closing.Done(); c.Close() }()
			}
		})
	}
	defer func() {
		release()
		closing.Wait()
	}()
	call := func(h *classify.Host, c *transport.Conn, op string, args, out any) bool {
		if err := boundedCall(ctx, c, opt.CallTimeout, op, args, out); err != nil {
			mu.Lock()
			if h.Error == "" {
				h.Error = fmt.Sprintf("%s failed: %v", op, err)
				if lost(ctx, err) {
					h.Error = lostMidCheck(op, err)
				}
			}
			mu.Unlock()
			return false
		}
		return true
	}
	// readFacts asks for the counters as read, parsed here: a third of
	// the cost of sending them as a map, on 104 snapshots at fifty real
	// servers.
	readFacts := func(h *classify.Host, c *transport.Conn, args obs.FactsArgs, f *obs.Facts) bool {
		args.RawCounters = true
		if !call(h, c, agent.OpFacts, args, f) {
			return false
		}
		if err := facts.Decode(f); err != nil {
			f.Errors = append(f.Errors, err.Error())
		}
		return true
	}
	usable := func(h *classify.Host) *transport.Conn {
		mu.Lock()
		defer mu.Unlock()
		if h.Error != "" {
			return nil
		}
		return conns[h.Label]
	}

	cip := top.ClientAddr()
	if !cip.IsValid() {
		// A client without an address in the file: ask it which source
		// it uses toward the VIP (it may sit behind NAT).
		if cl := in.Hosts[top.Client.Label()]; dial(cl) != nil {
			cip = clientAddress(ctx, top, usable(cl), opt.CallTimeout)
		}
		if cip.IsValid() {
			in.Hosts[top.Client.Label()].Address = cip.String()
			top.Client.Address = cip.String()
		}
	}
	capture := !opt.Static && cip.IsValid()
	var watch []string
	if capture {
		// Captures run around all the test traffic, so Q.1's pings and
		// Q.2's traceroutes are on the wire record too.
		watch = []string{cip.String()}
		for _, s := range top.Services {
			// A firewall-mark service need not name a VIP.
			if a := s.VIPPort().Addr(); a.IsValid() {
				watch = append(watch, a.String())
			}
		}
	}
	switch {
	case opt.Static:
		ev.landAll(StateSkipped, "--static: no test traffic")
	case !cip.IsValid():
		ev.landAll(StateSkipped, "the client's address is unknown")
	}
	captures := map[string]string{}
	opt.Progress(fmt.Sprintf("reaching %d hosts, reading their static picture, starting captures", len(in.Hosts)))
	each(in, func(h *classify.Host) {
		c := dial(h)
		if c == nil || usable(h) == nil {
			return
		}
		var f obs.Facts
		// Conntrack is read after the test only, for its connections.
		args := obs.FactsArgs{SkipConntrack: true, SkipListeners: h.Role == classify.RoleClient, Director: h.Role == classify.RoleDirector}
		if !readFacts(h, c, args, &f) {
			return
		}
		h.Before = &f
		if !capture {
			return
		}
		var st obs.CaptureStarted
		cargs := obs.CaptureArgs{Hosts: watch, ARP: true, MaxPackets: 4000, MaxTime: 30 * time.Second, PcapDir: opt.PcapDir, Label: h.Label, Ring: captureRing(top, h, opt)}
		if call(h, c, agent.OpCaptureStart, cargs, &st) {
			mu.Lock()
			captures[h.Label] = st.ID
			mu.Unlock()
		}
	})

	if capture {
		ev.unreached(in, top)
	}
	if cip.IsValid() {
		opt.Progress("Q.1-Q.4: pings, traceroutes and route lookups on the real servers; test connections from the client")
		runProbes(ctx, top, in, conns, cip, opt, call, &mu, ev)
	}

	opt.Progress("stopping captures, reading counters after the test")
	// Of the director's conntrack table only the test's connections
	// matter; the client's earlier ones linger for minutes.
	var ctOf []obs.CTKey
	for _, sr := range in.Services {
		for _, c := range sr.Conns {
			if c.Local != "" {
				ctOf = append(ctOf, obs.CTKey{Proto: c.Proto, Src: c.Local, Dst: c.Remote})
			}
			if c.Data != nil && c.Data.Local != "" {
				ctOf = append(ctOf, obs.CTKey{Proto: c.Proto, Src: c.Data.Local, Dst: c.Data.Addr})
			}
		}
	}
	stop := func(h *classify.Host, c *transport.Conn) {
		if id, ok := captures[h.Label]; ok {
			var cp obs.Capture
			if call(h, c, agent.OpCaptureStop, obs.CaptureStopArgs{ID: id}, &cp) {
				if err := packets.Unpack(&cp); err != nil {
					if cp.Error != "" {
						cp.Error += "; "
					}
					cp.Error += err.Error()
				}
				h.Capture = &cp
			}
		}
	}
	after := func(h *classify.Host, c *transport.Conn) {
		// A real server that got an ICMP redirect during the test routes
		// the client another way now: ask `ip route get CIP from RIP`
		// again (obs.RouteGet.After), while the counters are read.
		var wg sync.WaitGroup
		defer wg.Wait()
		if h.Role == classify.RoleRealServer && capture && h.Address != "" {
			wg.Add(1)
			go func() {
				defer wg.Done()
				args := obs.RouteGetArgs{Dst: cip.String(), Src: h.Address}
				var rg obs.RouteGet
				if call(h, c, agent.OpRouteGet, args, &rg) {
					rg.Dst, rg.Src, rg.After = args.Dst, args.Src, true
					mu.Lock()
					h.RouteGets = append(h.RouteGets, rg)
					mu.Unlock()
				}
			}()
		}
		// After the test only what moves: counters, rules with their
		// counters, neighbours, links, and the director's conntrack.
		var f obs.Facts
		args := obs.FactsArgs{SkipConntrack: true, SkipListeners: true, SkipStatic: true}
		if h.Role == classify.RoleDirector && len(ctOf) > 0 {
			// Only the director's table is read: the list (hundreds of
			// tuples at fifty real servers) goes to it alone.
			args.SkipConntrack, args.ConntrackOf = false, ctOf
		}
		if readFacts(h, c, args, &f) {
			h.After = &f
		}
	}
	if capture && opt.Events != nil {
		// Q.3 and Q.4 are judged from the captures alone: with all of them
		// in, and nothing written meanwhile, what the classifier makes of
		// them is their outcome while the counters are read.
		each(in, func(h *classify.Host) {
			if c := usable(h); c != nil {
				stop(h, c)
			}
		})
		ev.steps(classify.Run(in).Steps, false, "Q3", "Q4")
		each(in, func(h *classify.Host) {
			if c := usable(h); c != nil {
				after(h, c)
			}
		})
	} else {
		// Without a listener, each host reads its counters while its
		// capture comes in: both only look back at the test.
		each(in, func(h *classify.Host) {
			if c := usable(h); c != nil {
				var wg sync.WaitGroup
				wg.Add(1)
				go func() { defer wg.Done(); stop(h, c) }()
				after(h, c)
				wg.Wait()
			}
		})
	}

	release()
	opt.Progress("classifying")
	r := Judge(in, opt.Strict)
	r.Version, r.Started = opt.Version, start
	if !cip.IsValid() {
		r.Unchecked = append(r.Unchecked, result.Unchecked{Host: top.Client.Label(), What: "Q.1-Q.4",
			Why: "the client's address is unknown: give client.address in the topology, or make the client reachable"})
		r.Decide(opt.Strict)
	}
	ev.steps(r.Steps, true)
	r.DurationMS = time.Since(start).Milliseconds()
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

// clientAddress is the source the client uses toward the first VIP.
func clientAddress(ctx context.Context, top *topology.Topology, c *transport.Conn, limit time.Duration) netip.Addr {
	if c == nil || len(top.Services) == 0 {
		return netip.Addr{}
	}
	var rg obs.RouteGet
	if err := boundedCall(ctx, c, limit, agent.OpRouteGet, obs.RouteGetArgs{Dst: top.Services[0].VIPPort().Addr().String()}, &rg); err != nil {
		return netip.Addr{}
	}
	a, _ := netip.ParseAddr(rg.PrefSrc)
	return a
}

// lost says err ended a request to a host that answered before: the host,
// its agent or the SSH connection went away during the check, or stopped
// answering.
func lost(ctx context.Context, err error) bool {
	return (errors.Is(err, agent.ErrClosed) || errors.Is(err, errNoAnswer)) && ctx.Err() == nil
}

func lostMidCheck(op string, err error) string {
	return fmt.Sprintf("lost mid-check, during %s: the host went down, or its agent or connection ended (%v); what it showed before is not judged", op, err)
}

// errNoAnswer is an agent request that outlived Options.CallTimeout.
var errNoAnswer = errors.New("no answer")

// boundedCall is c.Call bounded by limit (the check's own end aside).
func boundedCall(ctx context.Context, c *transport.Conn, limit time.Duration, op string, args, out any) error {
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	err := c.Call(cctx, op, args, out)
	if err != nil && ctx.Err() == nil && cctx.Err() != nil {
		return fmt.Errorf("%w from its agent within %s (a probe that hangs there, or the host stopped answering)", errNoAnswer, limit)
	}
	return err
}

// agentWeight is a host's share of an agent process that serves several
// (transport.Options.Weight), in real servers. The director's agent work
// (two full capture rings, every test packet twice, the connection table)
// takes it to some 26 MiB alone, so it gets a process of its own: with a
// dozen real servers beside it, it came within a MiB of its 32. The
// client's (every test connection at once) is some 3 MiB over a real
// server's 0.7.
func agentWeight(role string) int {
	switch role {
	case classify.RoleDirector:
		return transport.AgentLoad
	case classify.RoleClient:
		return 4
	}
	return 1
}
