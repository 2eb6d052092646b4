package classify

import (
	"fmt"
	"net/netip"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

func init() { addRule(ruleRSFirewallReject) }

// The real server's firewall rejects the requests with ICMP (HOWTO Q.4
// A.3). The ICMP error leaving the real server for a test connection
// decides, not the client's errno: a TCP request answered with port
// unreachable (the TCP stack itself answers RST), any administratively
// prohibited code, or a UDP port unreachable while a socket listens. The
// director rewrites it to come from the VIP, inner header too.
func ruleRSFirewallReject(v *view) []result.Finding {
	var out []result.Finding
	if !v.cip.IsValid() {
		return nil
	}
	cip := v.cip.String()
	for _, h := range v.rs {
		if !h.Reached() || h.Capture == nil {
			continue
		}
		for _, sr := range v.in.Services {
			r, ok := v.realServerEntry(sr.Service, h)
			if !ok {
				continue
			}
			ap := r.AddrPort()
			rip := ap.Addr().String()
			n := 0
			var icmp obs.Packet
			var conn obs.Conn
			results := map[string]int{}
			for _, c := range sr.Conns {
				if v.rsOf(c) != h {
					continue
				}
				for _, p := range flowPackets(h, c) {
					if p.Dir != "out" || p.Proto != "icmp" || p.ICMPType != 3 || p.Inner == nil ||
						p.Inner.Src != cip || p.Inner.Dst != rip || p.Inner.DstPort != int(ap.Port()) {
						continue
					}
					if !rejectCode(*p, h, sr.Service.Proto, ap) {
						continue
					}
					if n == 0 {
						icmp, conn = *p, c
					}
					n++
					results[c.Result]++
					break
				}
			}
			if n == 0 {
				continue
			}
			f := newFinding("rs-firewall-reject", h.Label)
			f.Service, f.Address, f.Interface = sr.Service.String(), ap.String(), icmp.Iface
			f.Summary = fmt.Sprintf("the firewall on %s rejects the requests to %s with ICMP %s", h.Label, ap, icmpName(icmp.ICMPType, icmp.ICMPCode))
			f.Evidence = append(f.Evidence, fmt.Sprintf("%s %s out: %s — %d test requests rejected", h.Label, icmp.Iface, fmtPacket(icmp), n))
			f.Evidence = append(f.Evidence, v.rejectPath(conn, rip)...)
			for res, k := range results {
				f.Evidence = append(f.Evidence, fmt.Sprintf("the client's result: %s (%d test connections)", res, k))
			}
			src, _ := netip.ParseAddr(cip)
			m := packetMatch{src: src, dst: ap.Addr(), proto: sr.Service.Proto, sport: icmp.Inner.SrcPort, dport: int(ap.Port())}
			var hits []rsFwHit
			for _, hit := range rsFirewallHits(h, m, "in") {
				if hit.verdict == "reject" {
					hits = append(hits, hit)
				}
			}
			ev, rem := rsHitEvidence(hits)
			f.Evidence = append(f.Evidence, ev...)
			f.Remedy = rem
			if len(hits) == 0 {
				f.Evidence = append(f.Evidence, fmt.Sprintf("no reject rule with a counter on %s matched; the ICMP's source is the RIP, so the rejecting rule is there (nft list ruleset; iptables-save -c)", h.Label))
				f.Remedy = append(f.Remedy,
					fmt.Sprintf("nft -a list ruleset   # on %s: find the reject rule for %s and delete it (nft delete rule FAMILY TABLE CHAIN handle N)", h.Label, ap),
					fmt.Sprintf("or: iptables -I INPUT -d %s -p %s --dport %d -j ACCEPT   # on %s", ap.Addr(), sr.Service.Proto, ap.Port(), h.Label))
			}
			out = append(out, f)
		}
	}
	return out
}

// rejectCode says an ICMP unreachable for a request to ap can only come from
// a firewall: admin prohibited (codes 9, 10, 13), port unreachable for TCP
// (the stack answers RST), or port unreachable for UDP while a socket
// listens (without one it is rs-no-listener).
func rejectCode(p obs.Packet, h *Host, proto string, ap netip.AddrPort) bool {
	switch p.ICMPCode {
	case 9, 10, 13:
		return true
	case 3:
		if proto == "tcp" {
			return true
		}
		f := h.Facts()
		return f != nil && f.Listeners != nil && listening(f.Listeners, proto, ap)
	}
	return false
}

// rejectPath follows one rejected test connection's ICMP through the
// director: in on its private side from the RIP, out toward the client
// rewritten to the VIP.
func (v *view) rejectPath(c obs.Conn, rip string) []string {
	d := v.director
	var ev []string
	for _, p := range flowPackets(d, c) {
		if p.Proto != "icmp" || p.ICMPType != 3 {
			continue
		}
		switch {
		case p.Dir == "in" && p.Src == rip:
			ev = append(ev, fmt.Sprintf("%s %s in: %s", d.Label, p.Iface, fmtPacket(*p)))
		case p.Dir == "out" && p.Dst == v.cip.String():
			ev = append(ev, fmt.Sprintf("%s %s out: %s (rewritten by the director)", d.Label, p.Iface, fmtPacket(*p)))
		}
	}
	return ev
}
