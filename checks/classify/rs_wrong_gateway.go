package classify

import (
	"fmt"
	"net/netip"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

func init() { addRule(ruleRSWrongGateway) }

// The real server's replies must go back through the director (HOWTO Q.4
// A.6, Q.2). `ip route get CIP from RIP` on the real server decides: a next
// hop other than the DIP, no route at all, or a direct route past the
// director. Traceroute's first hop and the capture (the reply leaving
// toward another MAC, nothing arriving on the director) are the evidence.
func ruleRSWrongGateway(v *view) []result.Finding {
	var out []result.Finding
	if !v.cip.IsValid() {
		return nil
	}
	for _, h := range v.rs {
		rip := v.rip(h)
		if !h.Reached() || !rip.IsValid() {
			continue
		}
		rg := routeGet(h, v.cip.String(), rip.String(), "")
		if rg == nil || v.replyRouteHidden(h) {
			continue
		}
		dip, dipIface := v.dipFor(rip)
		id := "rs-wrong-gateway"
		var summary string
		switch {
		case rg.Error != "":
			summary = fmt.Sprintf("%s has no route to the client %s from %s (%s): replies cannot go back through the director", h.Label, v.cip, rip, rg.Error)
		case rg.Flags == "redirected":
			continue // an ICMP redirect, not the table: another fault
		case rg.Gateway == "" && rg.Type == "unicast":
			continue // rs-direct-route-to-client (its own file)
		case rg.Gateway != "" && dip.IsValid() && rg.Gateway != dip.String():
			summary = fmt.Sprintf("%s sends its replies to %s, not through the director %s", h.Label, rg.Gateway, dip)
		default:
			continue
		}
		f := newFinding(id, h.Label)
		f.Summary = summary
		f.Interface = rg.Dev
		f.Evidence = append(f.Evidence, v.replyRouteEvidence(h, rip, rg, dipIface)...)
		if dip.IsValid() {
			f.Remedy = append(f.Remedy, fmt.Sprintf("ip route replace default via %s   # on %s", dip, h.Label))
		} else {
			f.Remedy = []string{fmt.Sprintf("ip route replace default via DIP   # on %s: the director's address on its LAN", h.Label)}
		}
		for _, s := range v.serviceOf(h) {
			if r, ok := v.realServerEntry(s, h); ok {
				f.Address = r.AddrPort().String()
				break
			}
		}
		out = append(out, f)
	}
	return out
}

// replyRouteHidden says the real server's reply route cannot be judged, or
// another finding explains what it shows: a down link in front of it
// (link-down: a lookup may fail only because of it), a RIP the host does
// not have (rs-rip-missing: `ip route get CIP from RIP` fails for a
// non-local source), or requests dying in its rp_filter because of that
// route (rs-rpfilter names the route).
func (v *view) replyRouteHidden(h *Host) bool {
	if _, down := v.rsBehindDownLink(h); down {
		return true
	}
	if !v.rsRIPLocal(h) {
		return true
	}
	for _, s := range v.rsSilent(h) {
		if id, _ := v.silentCause(h, s); id == "rs-rpfilter" {
			return true
		}
	}
	return false
}

// replyPathEvidence tells where the real server's replies went: out of the
// real server toward which MAC, whether the director's side saw them, and
// whether the client got them straight from the RIP.
func (v *view) replyPathEvidence(h *Host, dipIface, gw string) []string {
	var ev []string
	rip := v.rip(h).String()
	cip := v.cip.String()
	conns := v.connsTo(h)
	replies, seenOnDirector, atClient := 0, 0, 0
	var sample string
	for _, c := range conns {
		for _, p := range flowPackets(h, c) {
			if p.Dir == "out" && p.Src == rip && p.Dst == cip {
				replies++
				if sample == "" {
					sample = fmt.Sprintf("%s %s out: %s → MAC %s", h.Label, p.Iface, fmtPacket(*p), p.DstMAC)
				}
			}
		}
		for _, p := range flowPackets(v.director, c) {
			if p.Dir == "in" && p.Src == rip && p.Iface == dipIface {
				seenOnDirector++
			}
		}
		for _, p := range flowPackets(v.client, c) {
			if p.Dir == "in" && p.Src == rip {
				atClient++
			}
		}
	}
	if sample != "" {
		ev = append(ev, sample)
	}
	if len(conns) > 0 && v.director != nil && v.director.Capture != nil {
		ev = append(ev, fmt.Sprintf("%s %s: %d of %d replies from %s arrived", v.director.Label, dipIface, seenOnDirector, replies, rip))
	}
	if atClient > 0 {
		ev = append(ev, fmt.Sprintf("the client received %d packets straight from %s, not from the VIP: they match no connection it made", atClient, rip))
	}
	return ev
}

// replyRouteEvidence is what shows where a real server's replies go: the
// route lookup, traceroute's first hop, and the replies on the wire.
func (v *view) replyRouteEvidence(h *Host, rip netip.Addr, rg *obs.RouteGet, dipIface string) []string {
	ev := []string{fmt.Sprintf("ip route get %s from %s → %s", v.cip, rip, fmtRouteGet(rg))}
	if h.Trace != nil && len(h.Trace.Hops) > 0 {
		first := h.Trace.Hops[0].Addr
		if first == "" {
			first = "no answer"
		}
		ev = append(ev, fmt.Sprintf("traceroute -n -s %s %s: first hop %s", rip, v.cip, first))
	}
	return append(ev, v.replyPathEvidence(h, dipIface, rg.Gateway)...)
}
