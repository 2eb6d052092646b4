package classify

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
)

func init() { addRule(ruleIPSecAHOverNAT) }

// An IPSec service (ISAKMP udp/500, ESP and AH by firewall mark) in NAT
// mode: AH authenticates the IP header, addresses included, so every AH
// packet the director rewrites fails the real server's integrity check
// (the seed's notes on IPSec). Static: a rule marks IP protocol 51 (AH)
// with a mark that the director balances with NAT (an nftables DNAT rule
// matching the mark, or an IPVS fwmark service with masq real servers).
func ruleIPSecAHOverNAT(v *view) []result.Finding {
	d := v.director
	if !d.Reached() {
		return nil
	}
	f := d.Facts()
	type ah struct {
		mark uint32
		desc string
	}
	var marks []ah
	for _, r := range f.NftRules {
		if r.Mark != nil && (r.Proto == "ah" || r.Proto == "51") {
			marks = append(marks, ah{*r.Mark, fmt.Sprintf("nft %s %s %s handle %d: %s", r.Family, r.Table, r.Chain, r.Handle, r.Text)})
		}
	}
	for _, ln := range iptablesRules(f.IptablesSave, "mangle") {
		p := flagValue(ln.rule, "-p")
		if !strings.Contains(ln.rule, "-j MARK") || (p != "ah" && p != "51") {
			continue
		}
		val := flagValue(ln.rule, "--set-mark")
		if val == "" {
			val, _, _ = strings.Cut(flagValue(ln.rule, "--set-xmark"), "/")
		}
		if n, err := strconv.ParseUint(val, 0, 32); err == nil {
			marks = append(marks, ah{uint32(n), "iptables -t mangle " + ln.rule})
		}
	}
	var out []result.Finding
	done := map[uint32]bool{}
	for _, a := range marks {
		if done[a.mark] {
			continue
		}
		var nat []string
		if f.IPVS != nil {
			for _, s := range f.IPVS.Services {
				if s.Proto != "fwmark" || s.Mark != a.mark {
					continue
				}
				for _, dst := range s.Dests {
					if dst.Forward == "masq" {
						nat = append(nat, fmt.Sprintf("ipvsadm -Ln: FWM %d -> %s Masq", a.mark, dst.Addr))
					}
				}
			}
		}
		for _, r := range f.NftRules {
			if (r.NAT == "dnat" || r.NAT == "snat" || r.NAT == "masquerade") && r.MarkMatch != nil && *r.MarkMatch == a.mark {
				nat = append(nat, fmt.Sprintf("nft %s %s %s handle %d: %s", r.Family, r.Table, r.Chain, r.Handle, r.Text))
			}
		}
		if len(nat) == 0 {
			continue
		}
		done[a.mark] = true
		fd := newFinding("ipsec-ah-over-nat", d.Label)
		fd.Service = fmt.Sprintf("fwmark %d", a.mark)
		fd.Summary = fmt.Sprintf("%s marks IPsec AH (IP protocol 51) with firewall mark %d and balances that mark with NAT: AH authenticates the addresses the director rewrites, so every AH packet fails the real server's check", d.Label, a.mark)
		fd.Evidence = append([]string{a.desc + "  (AH packets get mark " + strconv.Itoa(int(a.mark)) + ")"}, nat...)
		fd.Evidence = append(fd.Evidence, "AH (RFC 4302) covers the IP source and destination; NAT mode rewrites the destination (and the replies' source): the ICV no longer matches")
		fd.Remedy = []string{
			fmt.Sprintf("balance the IPsec service with direct routing or tunnelling instead of NAT: ipvsadm -e -f %d -r RIP -g   # for each real server", a.mark),
			"or use ESP with NAT traversal (udp/4500) instead of AH, and stop marking protocol 51 into this service",
		}
		out = append(out, fd)
	}
	return out
}
