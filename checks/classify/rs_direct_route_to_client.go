package classify

import (
	"fmt"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
)

func init() { addRule(ruleRSDirectRouteToClient) }

// A more specific route sends the real server's replies past the director
// (HOWTO Q.4 A.6): `ip route get CIP from RIP` on the real server answers
// with no gateway (the client on its LAN, a second interface, the client
// on the same host). The route decides; the reply leaving by that
// interface, nothing arriving on the director and the client getting
// packets straight from the RIP are the evidence. A redirected cache
// entry is icmp-redirect-bypass, not this.
func ruleRSDirectRouteToClient(v *view) []result.Finding {
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
		if rg == nil || rg.Error != "" || rg.Flags == "redirected" || rg.Gateway != "" || rg.Type != "unicast" || v.replyRouteHidden(h) {
			continue
		}
		dip, dipIface := v.dipFor(rip)
		f := newFinding("rs-direct-route-to-client", h.Label)
		f.Summary = fmt.Sprintf("%s reaches the client %s directly on %s, past the director", h.Label, v.cip, rg.Dev)
		f.Interface = rg.Dev
		ev := v.replyRouteEvidence(h, rip, rg, dipIface)
		f.Evidence = append(f.Evidence, ev[0])
		r := matchingRoute(h, v.cip)
		if r != nil {
			f.Evidence = append(f.Evidence, fmt.Sprintf("the route that matches: %s (more specific than the default via the director)", fmtRoute(r)))
		}
		f.Evidence = append(f.Evidence, ev[1:]...)
		if r != nil && r.Dst != "default" {
			f.Remedy = append(f.Remedy, fmt.Sprintf("ip route del %s   # on %s: the route that bypasses the director", fmtRoute(r), h.Label))
		} else {
			f.Remedy = append(f.Remedy, fmt.Sprintf("ip route del %s   # on %s: the route that bypasses the director (check `ip route show match %s`)", v.cip, h.Label, v.cip))
		}
		if dip.IsValid() {
			f.Remedy = append(f.Remedy, fmt.Sprintf("ip route replace default via %s   # on %s", dip, h.Label))
		}
		f.Address = firstAddress(v, h)
		out = append(out, f)
	}
	return out
}
