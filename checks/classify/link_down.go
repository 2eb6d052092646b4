package classify

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// hider reports what a fault hid: checks that could not run because the
// packets never got to where they would have been judged (DESIGN.md,
// Result: a fault hidden behind another goes to unchecked).
type hider func(v *view) []result.Unchecked

var hiders []hider

func addHider(h hider) { hiders = append(hiders, h) }

func init() {
	addRule(ruleLinkDown)
	addHider(hiddenByLinkDown)
}

// downLink is an interface with an address that is administratively down
// or has no carrier.
type downLink struct {
	link   obs.Link
	before *obs.Link
	addrs  []string
}

// downLinks lists a host's addressed interfaces that are down or have no
// carrier, from the latest facts.
func downLinks(h *Host) []downLink {
	f := h.Facts()
	if !h.Reached() || f == nil {
		return nil
	}
	var out []downLink
	for _, l := range f.Links {
		if l.Name == "lo" || l.Kind == "loopback" || (l.Up && l.Carrier) {
			continue
		}
		var addrs []string
		for _, a := range f.Addrs {
			if a.Link == l.Name {
				addrs = append(addrs, a.Prefix)
			}
		}
		if len(addrs) == 0 {
			continue // an unused port: not on any path
		}
		d := downLink{link: l, addrs: addrs}
		if h.Before != nil {
			for i := range h.Before.Links {
				if h.Before.Links[i].Name == l.Name {
					d.before = &h.Before.Links[i]
				}
			}
		}
		out = append(out, d)
	}
	return out
}

// pathLinkDown is the interface of h toward a (the one whose subnet holds
// a) when it is down or without carrier.
func pathLinkDown(h *Host, a netip.Addr) (downLink, bool) {
	iface, _ := ifaceFacing(h, a)
	for _, d := range downLinks(h) {
		if d.link.Name == iface || iface == "" {
			return d, true
		}
	}
	return downLink{}, false
}

// rsBehindDownLink says that nothing could reach the real server h: its own
// link toward the director, or the director's link toward it, is down.
func (v *view) rsBehindDownLink(h *Host) (string, bool) {
	rip := v.rip(h)
	dip, _ := v.dipFor(rip)
	if dip.IsValid() {
		if d, ok := pathLinkDown(h, dip); ok {
			return fmt.Sprintf("%s %s is %s", h.Label, d.link.Name, linkState(d.link)), true
		}
	}
	if v.director != nil && rip.IsValid() {
		if d, ok := pathLinkDown(v.director, rip); ok {
			return fmt.Sprintf("%s %s is %s", v.director.Label, d.link.Name, linkState(d.link)), true
		}
	}
	return "", false
}

func linkState(l obs.Link) string {
	var s []string
	if l.Up {
		s = append(s, "UP")
	} else {
		s = append(s, "DOWN (administratively)")
	}
	if !l.Carrier {
		s = append(s, "NO-CARRIER")
	}
	if l.OperState != "" {
		s = append(s, "operstate "+l.OperState)
	}
	return strings.Join(s, ", ")
}

// An interface on the path is down or has no carrier (the seed's
// walkthrough lost hours to a bad LB–hub cable). The link state decides;
// the counters and the test connections that died at it are the evidence.
func ruleLinkDown(v *view) []result.Finding {
	var out []result.Finding
	for _, h := range sortedHosts(v.in) {
		for _, d := range downLinks(h) {
			l := d.link
			f := newFinding("link-down", h.Label)
			f.Interface = l.Name
			what := "has no carrier"
			if !l.Up {
				what = "is administratively down"
			}
			f.Summary = fmt.Sprintf("%s %s %s: nothing passes it", h.Label, l.Name, what)
			f.Evidence = append(f.Evidence, fmt.Sprintf("ip -s link show dev %s on %s: %s; addresses %s", l.Name, h.Label, linkState(l), strings.Join(d.addrs, ", ")))
			cnt := fmt.Sprintf("%s %s counters: rx %d packets (%d errors, %d dropped), tx %d packets (%d errors, %d dropped)",
				h.Label, l.Name, l.RxPackets, l.RxErrors, l.RxDropped, l.TxPackets, l.TxErrors, l.TxDropped)
			if b := d.before; b != nil && h.After != nil {
				cnt += fmt.Sprintf("; during the test rx +%d, tx +%d", l.RxPackets-b.RxPackets, l.TxPackets-b.TxPackets)
			}
			f.Evidence = append(f.Evidence, cnt)
			f.Evidence = append(f.Evidence, v.behindDownLink(h, l.Name)...)
			if !l.Up {
				f.Remedy = append(f.Remedy, fmt.Sprintf("ip link set dev %s up   # on %s", l.Name, h.Label))
			} else {
				f.Remedy = append(f.Remedy,
					fmt.Sprintf("check the cable and the switch port of %s %s (ethtool %s; the switch's port state); the interface is up but sees no carrier", h.Label, l.Name, l.Name),
					fmt.Sprintf("for a veth, its peer is down: ip link set dev PEER up   # where the peer of %s lives", l.Name))
			}
			if h.Role == RoleRealServer {
				for _, s := range v.serviceOf(h) {
					if r, ok := v.realServerEntry(s, h); ok {
						f.Address = r.AddrPort().String()
						break
					}
				}
			}
			out = append(out, f)
		}
	}
	return out
}

// behindDownLink tells what the test traffic did at a down link: requests
// the director sent toward a real server behind it that never arrived,
// its neighbour entry for that real server.
func (v *view) behindDownLink(h *Host, iface string) []string {
	var ev []string
	var targets []*Host
	switch h.Role {
	case RoleRealServer:
		targets = []*Host{h}
	case RoleDirector:
		for _, rs := range v.rs {
			if i, _ := ifaceFacing(h, v.rip(rs)); i == iface {
				targets = append(targets, rs)
			}
		}
	}
	d := v.director
	for _, rs := range targets {
		rip := v.rip(rs).String()
		conns := v.connsTo(rs)
		sent, arrived := 0, 0
		for _, c := range conns {
			for _, p := range flowPackets(d, c) {
				if p.Dir == "out" && p.Dst == rip {
					sent++
				}
			}
			for _, p := range flowPackets(rs, c) {
				if p.Dir == "in" && p.Dst == rip {
					arrived++
				}
			}
		}
		failed := 0
		for _, c := range conns {
			if c.Result != "ok" {
				failed++
			}
		}
		if len(conns) > 0 && d != nil {
			ev = append(ev, fmt.Sprintf("%s sent %d test packets toward %s (%s); %d arrived there; %d of %d test connections failed", d.Label, sent, rip, rs.Label, arrived, failed, len(conns)))
		}
		if d != nil {
			if f := d.Facts(); f != nil {
				for _, n := range f.Neigh {
					if n.IP == rip && n.State != "REACHABLE" && n.State != "PERMANENT" {
						ev = append(ev, fmt.Sprintf("%s: neighbour %s dev %s %s", d.Label, n.IP, n.Link, n.State))
					}
				}
			}
		}
		if rs.Ping != nil && rs.Ping.Received == 0 {
			ev = append(ev, fmt.Sprintf("%s: ping -I %s %s: %d/%d replies", rs.Label, rip, v.cip, rs.Ping.Received, rs.Ping.Sent))
		}
	}
	return ev
}

// hiddenByLinkDown: behind a down link nothing of the real server's own
// checks (Q.2's path, Q.4's capture: listener answers, firewall, rp_filter,
// reply route) can be judged from the wire.
func hiddenByLinkDown(v *view) []result.Unchecked {
	var out []result.Unchecked
	for _, h := range v.rs {
		if !h.Reached() {
			continue
		}
		if why, ok := v.rsBehindDownLink(h); ok {
			out = append(out, result.Unchecked{Host: h.Label,
				What: fmt.Sprintf("Q.2 and Q.4 on %s (reply route, listener answers, firewall, rp_filter)", v.rip(h)),
				Why:  why + " (link-down): no test packet could reach it, so whatever else is wrong behind it stays hidden"})
		}
	}
	return out
}
