package classify

import (
	"fmt"
	"net/netip"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
)

func init() { addRule(ruleVIPNotOnDirector) }

// The VIP is not local on the director (HOWTO Q.3 A.4): IPVS needs it
// local (an address, or a local route such as the VIP on lo). The static
// picture decides: no address holds the VIP, no local route covers it,
// and the kernel's own lookup for a request (`ip route get VIP from CIP
// iif IN`) is not local. Under conntrack DNAT the requests are rewritten
// in prerouting whether or not the VIP is local, so there it is a fault
// only where the requests did not arrive (nobody answers the client's ARP
// for the VIP).
func ruleVIPNotOnDirector(v *view) []result.Finding {
	d := v.director
	if !d.Reached() || !v.cip.IsValid() {
		return nil
	}
	f := d.Facts()
	if f.Addrs == nil {
		return nil
	}
	seen := map[netip.Addr]bool{}
	var out []result.Finding
	for _, sr := range v.in.Services {
		s := sr.Service
		if s.Proto != "tcp" && s.Proto != "udp" {
			continue
		}
		vip := s.VIPPort().Addr()
		if seen[vip] {
			continue
		}
		seen[vip] = true
		if ifaceHolding(d, vip) != "" || localRouteCovers(d, vip) {
			continue
		}
		ing := v.ingress()
		rg := routeGet(d, vip.String(), v.cip.String(), ing)
		if rg != nil && rg.Type == "local" {
			continue
		}
		arrived, failed := 0, 0
		for _, sr2 := range v.in.Services {
			if sr2.Service.VIPPort().Addr() != vip {
				continue
			}
			for _, c := range sr2.Conns {
				if c.Result != "ok" {
					failed++
				}
				for _, p := range flowPackets(d, c) {
					if p.Dir == "in" && p.Dst == vip.String() {
						arrived++
						break
					}
				}
			}
		}
		if f.Datapath != "ipvs" && (failed == 0 || arrived > 0) {
			continue // conntrack DNAT does not need the VIP local
		}
		fd := newFinding("vip-not-on-director", d.Label)
		fd.Interface = ing
		fd.Service = s.String()
		fd.Summary = fmt.Sprintf("the VIP %s is not local on %s: no address holds it and no local route covers it", vip, d.Label)
		fd.Evidence = []string{fmt.Sprintf("%s: no interface has the address %s, and no local route covers it (ip -4 addr; ip route show table local)", d.Label, vip)}
		if rg != nil {
			fd.Evidence = append(fd.Evidence, fmt.Sprintf("ip route get %s from %s iif %s → %s (not local)", vip, v.cip, ing, fmtRouteGet(rg)))
		}
		if arrived == 0 && !v.in.Static {
			fd.Evidence = append(fd.Evidence, fmt.Sprintf("no request to %s reached %s", vip, d.Label))
		}
		if ne := v.clientVIPNeigh(); ne != "" {
			fd.Evidence = append(fd.Evidence, ne)
		}
		if n := v.unansweredARP(vip); n > 0 {
			fd.Evidence = append(fd.Evidence, fmt.Sprintf("%s asked %d times who has %s; nobody answered", v.client.Label, n, vip))
		}
		dev := ing
		if dev == "" {
			dev = "eth0"
		}
		fd.Remedy = []string{
			fmt.Sprintf("ip addr add %s/32 dev %s   # on %s", vip, dev, d.Label),
			fmt.Sprintf("# or, where the VIP is routed to the director: ip addr add %s/32 dev lo", vip),
		}
		out = append(out, fd)
	}
	return out
}

// localRouteCovers says a local-type route (table local or any other)
// covers a.
func localRouteCovers(h *Host, a netip.Addr) bool {
	f := h.Facts()
	if f == nil {
		return false
	}
	for _, r := range f.Routes {
		if r.Type != "local" {
			continue
		}
		if r.Dst == a.String() || prefixCovers(r.Dst, a) {
			return true
		}
	}
	return false
}

// unansweredARP counts the client's ARP requests for a that got no reply
// in its capture.
func (v *view) unansweredARP(a netip.Addr) int {
	if v.client == nil || v.client.Capture == nil {
		return 0
	}
	asked := 0
	for _, p := range v.client.Capture.Packets {
		if p.Proto != "arp" {
			continue
		}
		if p.ARPOp == "reply" && p.Src == a.String() {
			return 0
		}
		if p.ARPOp == "request" && p.Dst == a.String() && p.Dir == "out" {
			asked++
		}
	}
	return asked
}
