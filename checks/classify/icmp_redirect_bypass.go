package classify

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

func init() { addRule(ruleICMPRedirectBypass) }

// ICMP redirects on a one-arm director (HOWTO Q.2, Q.3 "client and server
// on the same physical media"). The director forwards a real server's reply
// out of the interface it came in on, so the kernel tells the real server,
// by ICMP redirect, to send to the client directly; a real server that
// accepts it keeps a cached route (`ip route get CIP from RIP` shows
// <redirected>, 300 s) and its replies then go around the director's
// translation. The static picture says it can happen (the interface facing
// the RIPs also faces the client, send_redirects on); the wire, the
// counters and the real server's route cache say it did. The real
// server's table still points at the DIP: that is not rs-wrong-gateway.
func ruleICMPRedirectBypass(v *view) []result.Finding {
	d := v.director
	if !d.Reached() || !v.cip.IsValid() {
		return nil
	}
	arm := v.ingress()
	if arm == "" {
		return nil
	}
	type rsSeen struct {
		h                *Host
		rip, dip         netip.Addr
		sent, got        int    // redirects leaving the director, arriving on the rs
		sample           string // one redirect on the wire
		inDelta          int64
		route            *obs.RouteGet // <redirected>
		accepts          string
		direct, atClient int // replies sent around the director, and received by the client from the RIP
		directSample     string
	}
	var seen []*rsSeen
	for _, h := range v.rs {
		rip := v.rip(h)
		dip, dipIface := v.dipFor(rip)
		if !rip.IsValid() || dipIface != arm {
			continue // not one-arm for this real server
		}
		s := &rsSeen{h: h, rip: rip, dip: dip}
		if d.Capture != nil {
			for _, p := range d.Capture.Packets {
				if p.Dir == "out" && p.Proto == "icmp" && p.ICMPType == 5 && p.Dst == rip.String() {
					s.sent++
					if s.sample == "" {
						s.sample = fmt.Sprintf("%s %s out: %s", d.Label, p.Iface, fmtRedirect(p))
					}
				}
			}
		}
		if h.Capture != nil {
			for _, p := range h.Capture.Packets {
				if p.Dir == "in" && p.Proto == "icmp" && p.ICMPType == 5 && p.Dst == rip.String() {
					s.got++
					if s.sample == "" {
						s.sample = fmt.Sprintf("%s %s in: %s", h.Label, p.Iface, fmtRedirect(p))
					}
				}
			}
			// Replies to the client that leave toward another MAC than
			// the director's: sent around it.
			dirMAC := v.linkMAC(d, dipIface)
			for _, p := range h.Capture.Packets {
				if p.Dir == "out" && p.Src == rip.String() && p.Dst == v.cip.String() && (p.Proto == "tcp" || p.Proto == "udp") &&
					dirMAC != "" && p.DstMAC != "" && !strings.EqualFold(p.DstMAC, dirMAC) {
					s.direct++
					if s.directSample == "" {
						s.directSample = fmt.Sprintf("%s %s out: %s → MAC %s, not the director's %s", h.Label, p.Iface, fmtPacket(p), p.DstMAC, dirMAC)
					}
				}
			}
		}
		if v.client != nil && v.client.Capture != nil {
			for _, p := range v.client.Capture.Packets {
				if p.Dir == "in" && p.Src == rip.String() && p.Dst == v.cip.String() && (p.Proto == "tcp" || p.Proto == "udp") {
					s.atClient++
				}
			}
		}
		s.inDelta, _ = counterDelta(h, "Icmp.InRedirects")
		for i := range h.RouteGets {
			rg := &h.RouteGets[i]
			if rg.Dst == v.cip.String() && rg.Src == rip.String() && strings.Contains(rg.Flags, "redirected") {
				s.route = rg
				if rg.After {
					break
				}
			}
		}
		s.accepts = acceptsRedirects(h, rip)
		seen = append(seen, s)
	}
	outDelta, _ := counterDelta(d, "Icmp.OutRedirects")
	sendAll, sendArm := sysctl(d, "net.ipv4.conf.all.send_redirects"), sysctl(d, "net.ipv4.conf."+arm+".send_redirects")
	sends := sendAll == "1" || sendArm == "1"
	var hit []*rsSeen
	for _, s := range seen {
		if s.sent > 0 || s.got > 0 || s.route != nil || (s.inDelta > 0 && sends) {
			hit = append(hit, s)
		}
	}
	if len(hit) == 0 {
		// Only the director's counter moved. With its capture running that
		// is no evidence: conntrack NAT counts the redirects of NATed flows
		// and drops them unsent. Without a capture it is all there is.
		if outDelta <= 0 || !sends || len(seen) == 0 || d.Capture != nil {
			return nil
		}
		hit = seen
	}
	f := newFinding("icmp-redirect-bypass", d.Label)
	f.Interface = arm
	var names, bypassed []string
	for _, s := range hit {
		names = append(names, s.h.Label)
		if s.route != nil || s.direct > 0 || s.atClient > 0 {
			bypassed = append(bypassed, s.h.Label)
		}
	}
	f.Summary = fmt.Sprintf("%s sends ICMP redirects to %s: it is one-arm (%s faces the client and the real servers) with send_redirects on, so the real servers are told to reach %s directly",
		d.Label, strings.Join(names, ", "), arm, v.cip)
	if !sends {
		f.Summary = fmt.Sprintf("%s reach %s on an ICMP redirect %s sent earlier (one-arm on %s; send_redirects is off now, the redirected routes live 300 s)",
			strings.Join(names, ", "), v.cip, d.Label, arm)
	}
	if len(bypassed) > 0 {
		f.Summary += fmt.Sprintf("; %s now send%s replies past the director's translation", strings.Join(bypassed, ", "), map[bool]string{true: "", false: "s"}[len(bypassed) > 1])
	}
	f.Evidence = append(f.Evidence, fmt.Sprintf("%s: net.ipv4.conf.all.send_redirects=%s, net.ipv4.conf.%s.send_redirects=%s; the RIP net and the client are both reached through %s",
		d.Label, orDash(sendAll), arm, orDash(sendArm), arm))
	if outDelta > 0 {
		f.Evidence = append(f.Evidence, fmt.Sprintf("%s: Icmp.OutRedirects rose by %d during the test", d.Label, outDelta))
	}
	for _, s := range hit {
		if s.sample != "" {
			f.Evidence = append(f.Evidence, s.sample)
		}
		if s.sent > 0 || s.got > 0 {
			f.Evidence = append(f.Evidence, fmt.Sprintf("%d redirects to %s left %s, %d arrived on %s", s.sent, s.rip, d.Label, s.got, s.h.Label))
		}
		if s.inDelta > 0 {
			f.Evidence = append(f.Evidence, fmt.Sprintf("%s: Icmp.InRedirects rose by %d", s.h.Label, s.inDelta))
		}
		if s.route != nil {
			when := ""
			if s.route.After {
				when = " (asked after the test)"
			}
			table := "a cached exception, not a route of the table"
			if r := matchingRoute(s.h, v.cip); r != nil {
				rr := *r
				if rr.Dst == "0.0.0.0/0" {
					rr.Dst = "default"
				}
				table = fmt.Sprintf("a cached exception: the table still says %s", fmtRoute(&rr))
			}
			f.Evidence = append(f.Evidence, fmt.Sprintf("%s: ip route get %s from %s → %s%s, %s", s.h.Label, v.cip, s.rip, fmtRouteGet(s.route), when, table))
		}
		if s.directSample != "" {
			f.Evidence = append(f.Evidence, fmt.Sprintf("%s (%d replies)", s.directSample, s.direct))
		}
		if s.atClient > 0 {
			f.Evidence = append(f.Evidence, fmt.Sprintf("the client received %d packets straight from %s, not from the VIP: they match no connection it made", s.atClient, s.rip))
		}
		if s.accepts != "" {
			f.Evidence = append(f.Evidence, s.accepts)
		}
	}
	f.Remedy = []string{
		fmt.Sprintf("sysctl -w net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.%s.send_redirects=0 net.ipv4.conf.default.send_redirects=0   # on %s; persist it in /etc/sysctl.d", arm, d.Label),
	}
	for _, s := range hit {
		f.Remedy = append(f.Remedy, fmt.Sprintf("ip route flush cache   # on %s: redirected routes live 300 s", s.h.Label))
	}
	f.Remedy = append(f.Remedy, "# or on the real servers: sysctl -w net.ipv4.conf.all.accept_redirects=0 (and per interface)")
	if len(hit) == 1 {
		f.Address = firstAddress(v, hit[0].h)
	}
	return []result.Finding{f}
}

// fmtRedirect renders an ICMP redirect with its gateway.
func fmtRedirect(p obs.Packet) string {
	s := fmt.Sprintf("%s > %s icmp redirect", p.Src, p.Dst)
	if p.Inner != nil {
		s += fmt.Sprintf(" for %s (%s:%d > %s:%d)", p.Inner.Dst, p.Inner.Src, p.Inner.SrcPort, p.Inner.Dst, p.Inner.DstPort)
	}
	if p.Gateway != "" {
		s += " to " + p.Gateway
	}
	return s
}

// acceptsRedirects describes whether a real server takes redirects: the
// kernel uses all AND the interface on a forwarding host, all OR the
// interface otherwise.
func acceptsRedirects(h *Host, rip netip.Addr) string {
	ifc := ifaceHolding(h, rip)
	if ifc == "" {
		return ""
	}
	all := sysctl(h, "net.ipv4.conf.all.accept_redirects")
	one := sysctl(h, "net.ipv4.conf."+ifc+".accept_redirects")
	if all == "" || one == "" {
		return ""
	}
	takes := all == "1" || one == "1"
	if sysctl(h, "net.ipv4.ip_forward") == "1" {
		takes = all == "1" && one == "1"
	}
	verdict := "it takes redirects"
	if !takes {
		verdict = "it ignores redirects"
	}
	return fmt.Sprintf("%s: net.ipv4.conf.all.accept_redirects=%s, net.ipv4.conf.%s.accept_redirects=%s: %s", h.Label, all, ifc, one, verdict)
}

func orDash(s string) string {
	if s == "" {
		return "?"
	}
	return s
}
