package classify

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

func init() { addRule(ruleDirectorRPFilterRequests) }

// The director's route back to the client leaves by another interface than
// the one the requests arrive on, and strict rp_filter (effective = max of
// all and the interface) rejects them (HOWTO Q.3 A.4). The static picture
// decides, because on the wire the fault has two faces: with the client's
// ARP entry for the VIP warm, SYNs arrive and die (IPReversePathFilter
// rises); cold, the director ignores the client's ARP by the same test and
// no SYN is ever sent.
func ruleDirectorRPFilterRequests(v *view) []result.Finding {
	d := v.director
	if !d.Reached() || !v.cip.IsValid() {
		return nil
	}
	ing := v.ingress()
	if ing == "" || rpFilter(d, ing) != 1 {
		return nil
	}
	back := routeGet(d, v.cip.String(), "", "")
	if back == nil || back.Error != "" || back.Dev == "" || back.Dev == ing {
		return nil
	}
	f := newFinding("director-rpfilter-requests", d.Label)
	f.Interface = ing
	f.Summary = fmt.Sprintf("strict rp_filter on %s %s drops the client's requests: the route back to %s leaves by %s", d.Label, ing, v.cip, back.Dev)
	f.Evidence = []string{
		fmt.Sprintf("effective rp_filter on %s = 1 (net.ipv4.conf.all.rp_filter=%s, net.ipv4.conf.%s.rp_filter=%s)", ing, sysctl(d, "net.ipv4.conf.all.rp_filter"), ing, sysctl(d, "net.ipv4.conf."+ing+".rp_filter")),
		fmt.Sprintf("ip route get %s → %s", v.cip, fmtRouteGet(back)),
	}
	for _, s := range v.in.Topology.Services {
		vip := s.VIPPort().Addr().String()
		if rg := routeGet(d, vip, v.cip.String(), ing); rg != nil && rg.Error != "" {
			f.Evidence = append(f.Evidence, fmt.Sprintf("ip route get %s from %s iif %s → %s (the kernel's own reverse-path verdict)", vip, v.cip, ing, rg.Error))
			break
		}
	}
	in, out, _ := v.directorFlowCounts()
	if n, ok := counterDelta(d, "TcpExt.IPReversePathFilter"); ok && n > 0 {
		f.Evidence = append(f.Evidence, fmt.Sprintf("TcpExt.IPReversePathFilter rose by %d during the test", n))
	}
	switch {
	case in > 0:
		f.Evidence = append(f.Evidence, fmt.Sprintf("%d request packets arrived on %s, %d left toward a real server", in, ing, out))
	case v.client != nil:
		if ne := v.clientVIPNeigh(); ne != "" {
			f.Evidence = append(f.Evidence, ne)
		}
		f.Evidence = append(f.Evidence, "no request reached the director: it ignores the client's ARP for the VIP by the same reverse-path test")
	}
	if r := matchingRoute(d, v.cip); r != nil && r.Dst != "default" {
		f.Remedy = append(f.Remedy, fmt.Sprintf("ip route del %s   # on %s: the route that sends traffic for the client out of %s", fmtRoute(r), d.Label, r.Dev))
	} else {
		f.Remedy = append(f.Remedy, fmt.Sprintf("ip route replace %s dev %s   # on %s: route the client back out of the interface its requests arrive on", v.cip, ing, d.Label))
	}
	f.Remedy = append(f.Remedy, "# rp_filter=2 (loose) alone would hide this and send the replies out the wrong way")
	return []result.Finding{f}
}

// clientVIPNeigh describes the client's neighbour entry for a VIP when it
// is not usable (FAILED, INCOMPLETE).
func (v *view) clientVIPNeigh() string {
	f := v.client.Facts()
	if f == nil {
		return ""
	}
	for _, s := range v.in.Topology.Services {
		vip := s.VIPPort().Addr().String()
		for _, n := range f.Neigh {
			if n.IP == vip && (n.State == "FAILED" || n.State == "INCOMPLETE") {
				return fmt.Sprintf("%s: neighbour %s dev %s %s (its ARP for the VIP got no answer)", v.client.Label, n.IP, n.Link, n.State)
			}
		}
	}
	return ""
}

// matchingRoute is the most specific main-table route covering a.
func matchingRoute(h *Host, a netip.Addr) *obs.Route {
	f := h.Facts()
	if f == nil {
		return nil
	}
	var best *obs.Route
	bestBits := -1
	for i, r := range f.Routes {
		if r.Table != 254 || (r.Type != "" && r.Type != "unicast") {
			continue
		}
		bits := 0
		if r.Dst != "default" && r.Dst != "" {
			p, err := netip.ParsePrefix(r.Dst)
			if err != nil {
				if ad, err2 := netip.ParseAddr(r.Dst); err2 == nil {
					p = netip.PrefixFrom(ad, 32)
				} else {
					continue
				}
			}
			if !p.Masked().Contains(a) {
				continue
			}
			bits = p.Bits()
		}
		if bits > bestBits {
			best, bestBits = &f.Routes[i], bits
		}
	}
	return best
}

func fmtRoute(r *obs.Route) string {
	parts := []string{r.Dst}
	if r.Gateway != "" {
		parts = append(parts, "via", r.Gateway)
	}
	if r.Dev != "" {
		parts = append(parts, "dev", r.Dev)
	}
	return strings.Join(parts, " ")
}
