package classify

import (
	"fmt"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
)

func init() { addRule(ruleRSRPFilter) }

// Strict rp_filter on the real server drops the requests, because its
// route back to the client leaves by another interface (HOWTO Q.4 A.5).
// The static picture decides (effective rp_filter on the interface the
// requests arrive on, `ip route get CIP from RIP`); the requests arriving
// and getting nothing, and IPReversePathFilter rising, are the evidence.
func ruleRSRPFilter(v *view) []result.Finding {
	return v.rsSilentFindings("rs-rpfilter", func(h *Host, s rsSilentReqs, _ []rsFwHit) result.Finding {
		iface := s.sample.Iface
		rip := v.rip(h)
		rg := routeGet(h, v.cip.String(), rip.String(), "")
		f := newFinding("rs-rpfilter", h.Label)
		f.Interface = iface
		f.Summary = fmt.Sprintf("strict rp_filter on %s %s drops the requests: the route back to %s leaves by %s", h.Label, iface, v.cip, devOf(rg))
		f.Evidence = []string{
			v.silentWire(h, s),
			fmt.Sprintf("effective rp_filter on %s = %d (net.ipv4.conf.all.rp_filter=%s, net.ipv4.conf.%s.rp_filter=%s)", iface, rpFilter(h, iface), sysctl(h, "net.ipv4.conf.all.rp_filter"), iface, sysctl(h, "net.ipv4.conf."+iface+".rp_filter")),
			fmt.Sprintf("ip route get %s from %s → %s", v.cip, rip, fmtRouteGet(rg)),
		}
		if n, ok := counterDelta(h, "TcpExt.IPReversePathFilter"); ok && n > 0 {
			f.Evidence = append(f.Evidence, fmt.Sprintf("TcpExt.IPReversePathFilter on %s rose by %d during the test", h.Label, n))
		}
		if r := matchingRoute(h, v.cip); r != nil && r.Dst != "default" && r.Dev != iface {
			f.Remedy = append(f.Remedy, fmt.Sprintf("ip route del %s   # on %s: the route that sends traffic for the client out of %s", fmtRoute(r), h.Label, r.Dev))
			f.Alternatives = append(f.Alternatives, result.Alternative{ID: "rs-direct-route-to-client",
				TellApart: fmt.Sprintf("the same route (%s) would send the replies past the director once the requests pass: rp_filter=2 alone turns this into rs-direct-route-to-client; remove the route", fmtRoute(r))})
		} else {
			gw := "DIP"
			if dip, _ := v.dipFor(rip); dip.IsValid() {
				gw = dip.String()
			}
			f.Remedy = append(f.Remedy, fmt.Sprintf("ip route replace default via %s   # on %s: the route back to the client must leave by %s", gw, h.Label, iface))
		}
		f.Remedy = append(f.Remedy, "# rp_filter=2 (loose) alone would let the requests in and send the replies out the wrong way")
		if len(rsFirewallHits(h, s.req, "in")) == 0 {
			f.Alternatives = append(f.Alternatives, result.Alternative{ID: "rs-firewall-drops-requests",
				TellApart: "no drop rule with a counter matched the requests; a rule without a counter would look the same (nft list ruleset; iptables-save -c)"})
		}
		return f
	})
}
