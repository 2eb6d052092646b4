package classify

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// Output is what the observations mean.
type Output struct {
	Datapath  string
	Steps     []result.Step
	Findings  []result.Finding
	Unchecked []result.Unchecked
	Journeys  []result.Journey
}

// Run classifies. It is deterministic: the same Input gives the same Output.
func Run(in *Input) Output {
	v := newView(in)
	var o Output
	if v.director != nil {
		if f := v.director.Facts(); f != nil {
			o.Datapath = f.Datapath
		}
	}
	for _, h := range sortedHosts(in) {
		if h.Error != "" {
			o.Unchecked = append(o.Unchecked, result.Unchecked{Host: h.Label, What: "every step on this host", Why: h.Error})
		}
	}
	for _, r := range rules {
		o.Findings = append(o.Findings, r(v)...)
	}
	o.Steps = v.steps()
	if !in.Static {
		o.Unchecked = append(o.Unchecked, v.unexercised()...)
		for _, u := range hiders {
			o.Unchecked = append(o.Unchecked, u(v)...)
		}
		o.Unchecked = append(o.Unchecked, v.unexplained(o.Findings)...)
		o.Journeys = v.journeys()
	}
	sortFindings(o.Findings)
	return o
}

func sevRank(s result.Severity) int {
	switch s {
	case result.SevError:
		return 0
	case result.SevWarning:
		return 1
	}
	return 2
}

func sortedHosts(in *Input) []*Host {
	var hs []*Host
	for _, h := range in.Hosts {
		hs = append(hs, h)
	}
	rank := map[string]int{RoleClient: 0, RoleDirector: 1, RoleRealServer: 2}
	sort.Slice(hs, func(i, j int) bool {
		if rank[hs[i].Role] != rank[hs[j].Role] {
			return rank[hs[i].Role] < rank[hs[j].Role]
		}
		return hs[i].Label < hs[j].Label
	})
	return hs
}

// steps reports the HOWTO's Q.1-Q.4 as the operator would have run them.
func (v *view) steps() []result.Step {
	var st, q2s []result.Step
	cip := v.cip.String()
	for _, h := range v.rs {
		rip := v.rip(h).String()
		q1 := result.Step{ID: "Q1", Host: h.Label, Commands: []string{fmt.Sprintf("ping -n -c1 -I %s %s", rip, cip)}}
		switch {
		case h.Error != "":
			q1.Status, q1.Summary = result.Error, "not reached: "+h.Error
		case h.Ping == nil:
			q1.Status, q1.Summary = result.Skipped, "not run"
		case h.Ping.Received > 0:
			q1.Status = result.Pass
			q1.Summary = fmt.Sprintf("%s (%s) pings %s: %d/%d replies", h.Label, rip, cip, h.Ping.Received, h.Ping.Sent)
		case h.Ping.Error != "":
			q1.Status, q1.Summary = result.Fail, fmt.Sprintf("%s (%s) cannot ping %s: %s", h.Label, rip, cip, h.Ping.Error)
		default:
			q1.Status = result.Fail
			q1.Summary = fmt.Sprintf("%s (%s) pings %s: %d/%d replies", h.Label, rip, cip, h.Ping.Received, h.Ping.Sent)
		}
		st = append(st, q1)

		q2 := result.Step{ID: "Q2", Host: h.Label, Commands: []string{fmt.Sprintf("traceroute -n -s %s %s", rip, cip), fmt.Sprintf("ip route get %s from %s", cip, rip)}}
		switch {
		case h.Error != "":
			q2.Status, q2.Summary = result.Error, "not reached: "+h.Error
		case h.Trace == nil:
			q2.Status, q2.Summary = result.Skipped, "not run"
		default:
			q2.Status, q2.Summary = TraceStep(v.director, h, v.rip(h), v.cip)
		}
		q2s = append(q2s, q2)
	}
	st = append(st, q2s...)
	for _, sr := range v.in.Services {
		st = append(st, v.stepQ3(sr))
	}
	for _, sr := range v.in.Services {
		for _, r := range sr.Service.RealServers {
			if h := v.in.Hosts[r.Label()]; h != nil {
				st = append(st, v.stepQ4(sr, h, r.AddrPort()))
			}
		}
	}
	return st
}

func (v *view) stepQ3(sr ServiceRun) result.Step {
	d := v.director
	s := sr.Service
	st := result.Step{ID: "Q3", Host: "director", Service: s.String(),
		Commands: []string{fmt.Sprintf("tcpdump -ln -i any host %s   # on the director, every interface", v.cip)}}
	if d != nil {
		st.Host = d.Label
	}
	switch {
	case d == nil || d.Error != "":
		st.Status, st.Summary = result.Error, "director not reached"
		return st
	case v.in.Static:
		st.Status, st.Summary = result.Skipped, "--static: no test traffic"
		return st
	case sr.Error != "":
		st.Status, st.Summary = result.Error, "test connections could not run: "+sr.Error
		return st
	case d.Capture == nil:
		st.Status, st.Summary = result.Error, "no capture on the director"
		return st
	}
	if link, _ := v.clientOnDirector(); link != "" {
		st.Status, st.Summary = result.Skipped, fmt.Sprintf("the client is the director itself (%s on %s): its connections are not forwarded (client-on-director)", v.cip, link)
		return st
	}
	vip := s.VIPPort().Addr().String()
	cip := v.cip.String()
	both, total, unseen := 0, len(sr.Conns), 0
	var lost []string
	for _, c := range sr.Conns {
		fwd, back := false, false
		for _, p := range flowPackets(d, c) {
			if p.Dir == "out" && p.Src == cip && p.Dst != vip {
				fwd = true
			}
			if p.Dir == "out" && p.Dst == cip && p.Src == vip {
				back = true
			}
		}
		if fwd && back {
			both++
			continue
		}
		if c.Result == "ok" && d.Capture.Dropped > 0 {
			// The client had its answer from the VIP, which only the
			// director's forwarding both ways can give; its capture
			// lost packets (a slow host), not the director.
			both++
			unseen++
			continue
		}
		if h := v.rsOf(c); h != nil {
			lost = append(lost, h.Label)
		} else {
			lost = append(lost, "none")
		}
	}
	if both == total && total > 0 {
		st.Status = result.Pass
		st.Summary = fmt.Sprintf("%d test connections forwarded in both directions", total)
		if unseen > 0 {
			st.Summary += fmt.Sprintf(" (%d known only by the client's answer: the director's capture dropped %d packets)", unseen, d.Capture.Dropped)
		}
	} else {
		st.Status = result.Fail
		st.Summary = fmt.Sprintf("%d of %d test connections not forwarded in both directions (real server: %s)", total-both, total, strings.Join(uniq(lost), ", "))
	}
	return st
}

func (v *view) stepQ4(sr ServiceRun, h *Host, ap netip.AddrPort) result.Step {
	st := result.Step{ID: "Q4", Host: h.Label, Service: sr.Service.String(),
		Commands: []string{fmt.Sprintf("tcpdump -ln host %s   # on %s, the interface toward the director", v.cip, h.Label)}}
	switch {
	case h.Error != "":
		st.Status, st.Summary = result.Error, "not reached: "+h.Error
		return st
	case v.in.Static:
		st.Status, st.Summary = result.Skipped, "--static: no test traffic"
		return st
	case h.Capture == nil:
		st.Status, st.Summary = result.Error, "no capture"
		return st
	}
	n, replied, astray := 0, 0, 0
	var how, strayMAC string
	dip, dipIface := v.dipFor(ap.Addr())
	dirMAC := ""
	if v.director != nil && dipIface != "" {
		dirMAC = v.linkMAC(v.director, dipIface)
	}
	for _, c := range sr.Conns {
		if v.rsOf(c) != h {
			continue
		}
		n++
		ok := false
		for _, p := range flowPackets(h, c) {
			if p.Dir != "out" || p.Dst != v.cip.String() {
				if p.Dir == "out" && p.Proto == "icmp" {
					how = fmtPacket(*p)
				}
				continue
			}
			if p.Proto == "tcp" && (p.Flags == "S." || strings.Contains(p.Flags, "P")) || p.Proto == "udp" {
				if dirMAC != "" && p.DstMAC != "" && !strings.EqualFold(p.DstMAC, dirMAC) {
					astray++
					strayMAC = p.DstMAC
					continue
				}
				ok = true
			} else if how == "" {
				how = fmtPacket(*p)
			}
		}
		if ok {
			replied++
		}
	}
	switch {
	case n == 0:
		st.Status, st.Summary = result.Skipped, "no test connection reached "+ap.String()
	case replied == n:
		st.Status, st.Summary = result.Pass, fmt.Sprintf("%d of %d requests answered from %s", replied, n, ap)
	case astray > 0:
		st.Status = result.Fail
		st.Summary = fmt.Sprintf("replies from %s leave toward MAC %s, not the director's %s (%s)", ap, strayMAC, dirMAC, dip)
	default:
		st.Status = result.Fail
		st.Summary = fmt.Sprintf("%d of %d requests answered from %s", replied, n, ap)
		if how != "" {
			st.Summary += "; sent instead: " + how
		}
	}
	return st
}

// unexercised lists real servers that no test connection reached although
// the director was seen forwarding: their static checks ran, their wire
// checks could not.
func (v *view) unexercised() []result.Unchecked {
	var out []result.Unchecked
	for _, sr := range v.in.Services {
		if sr.Error != "" {
			host := "director"
			if v.director != nil {
				host = v.director.Label
			}
			out = append(out, result.Unchecked{Host: host, What: "Q.3 and Q.4 for " + sr.Service.String(), Why: sr.Error})
		}
		if len(sr.Conns) == 0 {
			continue
		}
		for _, r := range sr.Service.RealServers {
			h := v.in.Hosts[r.Label()]
			if h == nil || h.Error != "" || r.W() == 0 || v.outOfTable(sr.Service, r) {
				continue
			}
			hit := false
			for _, c := range sr.Conns {
				if v.rsOf(c) == h {
					hit = true
					break
				}
			}
			if !hit {
				out = append(out, result.Unchecked{Host: h.Label, What: "Q.4 capture for " + sr.Service.String(),
					Why: fmt.Sprintf("none of the %d test connections reached %s", len(sr.Conns), r.AddrPort())})
			}
		}
	}
	return out
}

// unexplained turns test connections that failed while no error finding
// explains anything into an inconclusive result: a failure the rules do
// not know must never read as healthy.
func (v *view) unexplained(fs []result.Finding) []result.Unchecked {
	for _, f := range fs {
		if f.Severity == result.SevError {
			return nil
		}
	}
	var out []result.Unchecked
	for _, sr := range v.in.Services {
		bad := 0
		var res []string
		for _, c := range sr.Conns {
			if c.Result != "ok" {
				bad++
				res = append(res, c.Result)
			}
		}
		if bad > 0 {
			out = append(out, result.Unchecked{Host: v.client.Label, What: "test connections to " + sr.Service.String(),
				Why: fmt.Sprintf("%d of %d failed (%s) and no known fault matched what was seen", bad, len(sr.Conns), strings.Join(uniq(res), ", "))})
		}
	}
	return out
}

// journeys follows test connections through every capture: every failed
// connection (one per real server and service) and one good one per service.
func (v *view) journeys() []result.Journey {
	var out []result.Journey
	for _, sr := range v.in.Services {
		seen := map[string]bool{}
		okShown := false
		for _, c := range sr.Conns {
			rs := v.rsOf(c)
			key := "none"
			if rs != nil {
				key = rs.Label
			}
			if c.Result == "ok" {
				if okShown {
					continue
				}
				okShown = true
			} else {
				if seen[key] {
					continue
				}
				seen[key] = true
			}
			out = append(out, v.journey(c, rs))
		}
	}
	return out
}

func (v *view) journey(c obs.Conn, rs *Host) result.Journey {
	j := result.Journey{Flow: fmt.Sprintf("%s %s -> %s", c.Proto, c.Local, c.Remote), Result: c.Result, Hops: []result.Hop{}}
	hosts := []*Host{v.client, v.director}
	if rs != nil {
		j.RealServer = rs.Label
		hosts = append(hosts, rs)
	}
	type tp struct {
		p obs.Packet
		h string
	}
	var all []tp
	for _, h := range hosts {
		for _, p := range flowPackets(h, c) {
			all = append(all, tp{*p, h.Label})
		}
	}
	sort.SliceStable(all, func(i, k int) bool { return all[i].p.Time.Before(all[k].p.Time) })
	for _, x := range all {
		hop := result.Hop{Host: x.h, Interface: x.p.Iface, Direction: x.p.Dir, Packet: fmtPacket(x.p)}
		if len(j.Hops) > 0 {
			hop.TimeUS = x.p.Time.Sub(all[0].p.Time).Microseconds()
		}
		j.Hops = append(j.Hops, hop)
	}
	return j
}

func uniq(ss []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
