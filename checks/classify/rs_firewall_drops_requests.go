package classify

import (
	"fmt"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
)

func init() { addRule(ruleRSFirewallDropsRequests) }

// The real server's firewall drops the requests silently (HOWTO Q.4 A.5):
// they arrive on the wire, nothing answers, and a drop rule that sees
// incoming packets counted them.
func ruleRSFirewallDropsRequests(v *view) []result.Finding {
	return v.rsSilentFindings("rs-firewall-drops-requests", func(h *Host, s rsSilentReqs, hits []rsFwHit) result.Finding {
		f := newFinding("rs-firewall-drops-requests", h.Label)
		f.Summary = fmt.Sprintf("a firewall rule on %s drops the requests to %s", h.Label, s.addr)
		ev, rem := rsHitEvidence(hits)
		f.Evidence = append([]string{v.silentWire(h, s)}, ev...)
		f.Remedy = rem
		if rpFilter(h, s.sample.Iface) == 1 && v.rsRPFilterDrops(h, s.sample.Iface) {
			f.Alternatives = append(f.Alternatives, result.Alternative{ID: "rs-rpfilter",
				TellApart: fmt.Sprintf("strict rp_filter on %s %s would drop them too; the drop rule counted them, so it came first", h.Label, s.sample.Iface)})
		}
		return f
	})
}
