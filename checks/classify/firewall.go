package classify

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// droppingRule is a firewall rule whose counter rose during the test and
// whose verdict drops or rejects.
type droppingRule struct {
	Desc   string // "nft ip filter forward handle 7 (comment): ... drop"
	Delta  int64
	Remedy []string
}

// packetMatch is the packet a rule is tested against: only the fields an
// nft rule decodes are compared, an empty field matches anything.
type packetMatch struct {
	src, dst     netip.Addr
	proto        string
	sport, dport int
}

func (m packetMatch) fits(r obs.NftRule) bool {
	if r.Opaque {
		return true // cannot tell: an iptables-nft rule; let the counter speak
	}
	if r.SAddr != "" && !prefixCovers(r.SAddr, m.src) {
		return false
	}
	if r.DAddr != "" && !prefixCovers(r.DAddr, m.dst) {
		return false
	}
	if r.Proto != "" && r.Proto != m.proto {
		return false
	}
	if r.SPort != 0 && r.SPort != m.sport {
		return false
	}
	if r.DPort != 0 && r.DPort != m.dport {
		return false
	}
	return true
}

// droppers lists the drop/reject rules that fit m and counted packets
// during the test, in nft and in iptables-save -c output.
func droppers(h *Host, m packetMatch) []droppingRule {
	if h == nil || h.Before == nil || h.After == nil {
		return nil
	}
	before := map[string]uint64{}
	for _, r := range h.Before.NftRules {
		if r.Packets != nil {
			before[nftKey(r)] = *r.Packets
		}
	}
	var out []droppingRule
	for _, r := range h.After.NftRules {
		if (r.Verdict != "drop" && r.Verdict != "reject") || r.Packets == nil || !m.fits(r) {
			continue
		}
		d := int64(*r.Packets) - int64(before[nftKey(r)])
		if d <= 0 {
			continue
		}
		desc := fmt.Sprintf("nft %s %s %s handle %d", r.Family, r.Table, r.Chain, r.Handle)
		if r.Comment != "" {
			desc += fmt.Sprintf(" (%q)", r.Comment)
		}
		desc += ": " + r.Text
		out = append(out, droppingRule{
			Desc:   desc,
			Delta:  d,
			Remedy: []string{fmt.Sprintf("nft delete rule %s %s %s handle %d", r.Family, r.Table, r.Chain, r.Handle)},
		})
	}
	bIpt := map[string]int64{}
	for _, l := range iptablesRules(h.Before.IptablesSave, "filter") {
		bIpt[l.rule] = l.packets
	}
	for _, l := range iptablesRules(h.After.IptablesSave, "filter") {
		if l.packets < 0 || !(strings.Contains(l.rule, "-j DROP") || strings.Contains(l.rule, "-j REJECT")) {
			continue
		}
		if d := l.packets - bIpt[l.rule]; d > 0 {
			out = append(out, droppingRule{
				Desc:   "iptables " + l.rule,
				Delta:  d,
				Remedy: []string{"iptables -D" + l.rule[2:]},
			})
		}
	}
	return out
}

func nftKey(r obs.NftRule) string {
	return fmt.Sprintf("%s/%s/%s/%d", r.Family, r.Table, r.Chain, r.Handle)
}
