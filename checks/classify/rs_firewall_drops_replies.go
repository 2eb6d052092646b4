package classify

import (
	"fmt"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
)

func init() { addRule(ruleRSFirewallDropsReplies) }

// The real server's firewall drops its own replies (HOWTO Q.4 A.5): the
// request arrives, the listener answers (the stack's output counters
// rise), but nothing leaves; a drop rule that sees outgoing packets
// counted the replies.
func ruleRSFirewallDropsReplies(v *view) []result.Finding {
	return v.rsSilentFindings("rs-firewall-drops-replies", func(h *Host, s rsSilentReqs, hits []rsFwHit) result.Finding {
		f := newFinding("rs-firewall-drops-replies", h.Label)
		f.Summary = fmt.Sprintf("a firewall rule on %s drops its own replies from %s", h.Label, s.addr)
		ev, rem := rsHitEvidence(hits)
		f.Evidence = append([]string{v.silentWire(h, s)}, ev...)
		var stack []string
		keys := []string{"Tcp.OutSegs", "Tcp.RetransSegs"}
		if s.rep.proto == "udp" {
			keys = []string{"Udp.OutDatagrams"}
		}
		for _, k := range keys {
			if n, ok := counterDelta(h, k); ok && n > 0 {
				stack = append(stack, fmt.Sprintf("%s +%d", k, n))
			}
		}
		req, ok1 := counterDelta(h, "Ip.OutRequests")
		tx, ok2 := counterDelta(h, "Ip.OutTransmits")
		if ok1 && ok2 && req > tx {
			stack = append(stack, fmt.Sprintf("Ip.OutRequests +%d but Ip.OutTransmits +%d: %d packets the stack sent never left", req, tx, req-tx))
		}
		if len(stack) > 0 {
			f.Evidence = append(f.Evidence, fmt.Sprintf("the listener answered: on %s %v during the test", h.Label, stack))
		}
		f.Remedy = rem
		return f
	})
}
