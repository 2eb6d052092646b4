package classify

import (
	"fmt"
	"net/netip"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

func init() { addRule(ruleRepliesNotTranslated) }

// Replies pass the director but leave it with a source that is not the VIP
// (HOWTO Q.3 A.3): they match no connection entry. The director's capture
// shows a reply to the test connection's CIP:CPORT arriving from the real
// servers' side with a source that is not the RIP the request was sent to,
// and leaving toward the client from something other than the VIP
// (untranslated, or masqueraded to the director's own address). Where the
// source is another address of the real server, that real server is the
// cause (a service bound to 0.0.0.0 answers from the route's preferred
// source).
func ruleRepliesNotTranslated(v *view) []result.Finding {
	d := v.director
	if !d.Reached() || d.Capture == nil || !v.cip.IsValid() {
		return nil
	}
	cip := v.cip.String()
	var out []result.Finding
	for _, sr := range v.in.Services {
		s := sr.Service
		vip := s.VIPPort().Addr().String()
		rips := map[string]bool{}
		for _, o := range s.RealServers {
			rips[o.AddrPort().Addr().String()] = true
		}
		for _, h := range v.rs {
			r, ok := v.realServerEntry(s, h)
			if !ok {
				continue
			}
			ap := r.AddrPort()
			n := 0
			var in, left *obs.Packet
			for _, c := range sr.Conns {
				if v.rsOf(c) != h {
					continue
				}
				cport := portOf(c.Local)
				var ci, cl *obs.Packet
				for _, p := range flowPackets(d, c) {
					if p.Proto != c.Proto || p.Dst != cip || p.DstPort != cport {
						continue
					}
					if p.Dir == "in" && !rips[p.Src] && p.Src != vip && p.SrcPort == int(ap.Port()) && ci == nil {
						ci = p
					}
					if p.Dir == "out" && p.Src != vip && cl == nil {
						cl = p
					}
				}
				if ci == nil {
					continue
				}
				n++
				if in == nil {
					in, left = ci, cl
				}
			}
			if n == 0 {
				continue
			}
			src := ipOf(in.Src)
			own := ifaceHolding(h, src)
			f := newFinding("replies-not-translated", d.Label)
			f.Service = s.String()
			f.Address = ap.String()
			f.Interface = in.Iface
			f.Evidence = []string{fmt.Sprintf("%s %s in: %s — from %s, not the RIP %s the request was sent to", d.Label, in.Iface, fmtPacket(*in), in.Src, ap.Addr())}
			if left != nil {
				how := "untranslated"
				if ifaceHolding(d, ipOf(left.Src)) != "" {
					how = "masqueraded to the director's own address"
				}
				f.Evidence = append(f.Evidence, fmt.Sprintf("%s %s out: %s — %s, not from the VIP %s", d.Label, left.Iface, fmtPacket(*left), how, vip))
			} else {
				f.Evidence = append(f.Evidence, fmt.Sprintf("the reply did not leave %s from the VIP %s", d.Label, vip))
			}
			f.Evidence = append(f.Evidence, fmt.Sprintf("%d test connections to %s via %s got their reply from %s: it matches no connection entry on the director", n, s, h.Label, in.Src))
			if ev := clientRefusal(v, left); ev != "" {
				f.Evidence = append(f.Evidence, ev)
			}
			if own != "" {
				f.Host = h.Label
				f.Interface = own
				f.Summary = fmt.Sprintf("%s answers %s from its other address %s, not the RIP %s: the director cannot translate the replies back to the VIP", h.Label, s, src, ap.Addr())
				f.Evidence = append(f.Evidence, fmt.Sprintf("%s holds %s on %s besides the RIP", h.Label, src, own))
				if rt := defaultRoute(h); rt != nil && rt.Src == src.String() {
					f.Evidence = append(f.Evidence, fmt.Sprintf("%s: default via %s dev %s src %s — the preferred source of its replies", h.Label, rt.Gateway, rt.Dev, rt.Src))
				}
				if l := wildcardListener(h, s.Proto, ap); l != "" {
					f.Evidence = append(f.Evidence, fmt.Sprintf("%s: the service listens on %s, so it answers from the route's preferred source", h.Label, l))
				}
				dip, _ := v.dipFor(ap.Addr())
				f.Remedy = []string{
					fmt.Sprintf("bind the service on %s to %s (not 0.0.0.0), or make the RIP the preferred source:", h.Label, ap),
					fmt.Sprintf("ip route replace default via %s src %s   # on %s", dip, ap.Addr(), h.Label),
				}
			} else {
				f.Summary = fmt.Sprintf("replies to %s reach %s from %s, not from the RIP %s: they match no connection entry and leave untranslated", s, d.Label, src, ap.Addr())
				f.Alternatives = []result.Alternative{
					{ID: "replies-not-translated", TellApart: "the request may have come in through another director (its entry is there), or the entry expired before the reply: compare conntrack -L / ipvsadm -Lnc on every director"},
				}
				f.Remedy = []string{fmt.Sprintf("find the host that owns %s and make it answer from %s", src, ap)}
			}
			out = append(out, f)
		}
	}
	return out
}

func portOf(s string) int {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return 0
	}
	return int(ap.Port())
}

func defaultRoute(h *Host) *obs.Route {
	f := h.Facts()
	if f == nil {
		return nil
	}
	for i, r := range f.Routes {
		if r.Dst == "default" && (r.Table == 254 || r.Table == 0) {
			return &f.Routes[i]
		}
	}
	return nil
}

func wildcardListener(h *Host, proto string, ap netip.AddrPort) string {
	f := h.Facts()
	if f == nil {
		return ""
	}
	for _, l := range f.Listeners {
		if la, err := netip.ParseAddrPort(l.Addr); err == nil && l.Proto == proto && la.Port() == ap.Port() && la.Addr().IsUnspecified() {
			return l.Addr
		}
	}
	return ""
}

// clientRefusal is what the client did with the untranslated reply (an
// ICMP port unreachable or a RST back to its source), where it was seen.
func clientRefusal(v *view, left *obs.Packet) string {
	if left == nil || v.client == nil || v.client.Capture == nil {
		return ""
	}
	for _, p := range v.client.Capture.Packets {
		if p.Dir != "out" || p.Dst != left.Src {
			continue
		}
		if p.Proto == "icmp" && p.Inner != nil && p.Inner.Src == left.Src && p.Inner.SrcPort == left.SrcPort {
			return fmt.Sprintf("%s %s out: %s — the client does not know the reply", v.client.Label, p.Iface, fmtPacket(p))
		}
		if p.Proto == "tcp" && p.SrcPort == left.DstPort && (p.Flags == "R" || p.Flags == "R.") {
			return fmt.Sprintf("%s %s out: %s — the client does not know the reply", v.client.Label, p.Iface, fmtPacket(p))
		}
	}
	return ""
}
