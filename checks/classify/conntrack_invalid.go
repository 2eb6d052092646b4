package classify

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
)

// invalidDrops are the drop rules matching ct state invalid whose counter
// rose while replies matching m died.
func invalidDrops(d *Host, m packetMatch) []fwDrop {
	var out []fwDrop
	for _, r := range fwDroppers(d, []packetMatch{m}) {
		if r.CtInvalid {
			out = append(out, r)
		}
	}
	return out
}

// conntrackInvalidFinding: the replies from a real server arrive on the
// director and a stateful rule drops them as INVALID (HOWTO Q.3 A.2):
// conntrack saw no start of these connections (IPVS with
// net.ipv4.vs.conntrack=0, requests marked notrack, an asymmetric path).
func conntrackInvalidFinding(v *view, d *Host, rip netip.Addr, m packetMatch, wire []string, inv []fwDrop) result.Finding {
	f := newFinding("conntrack-invalid-drop", d.Label)
	f.Summary = fmt.Sprintf("a ct state invalid rule on %s drops the replies from %s: conntrack did not see these connections start", d.Label, rip)
	f.Evidence = append([]string(nil), wire...)
	for _, r := range inv {
		f.Evidence = append(f.Evidence, fmt.Sprintf("%s — counter +%d during the test", r.Desc, r.Delta))
		f.Remedy = append(f.Remedy, r.Remedy...)
	}
	df := d.Facts()
	if df.Conntrack != nil {
		// Entries of this service's test connections only: the client's
		// others (another service, tracked as usual) say nothing here.
		n, rep := 0, netip.AddrPortFrom(rip, uint16(m.sport)).String()
		for _, e := range df.Conntrack {
			if e.Proto == m.proto && strings.HasPrefix(e.OrigSrc, v.cip.String()+":") && (e.ReplSrc == "" || e.ReplSrc == rep) {
				n++
			}
		}
		if n == 0 {
			f.Evidence = append(f.Evidence, fmt.Sprintf("%s's conntrack table holds no entry for the test connections to %s: it saw only the replies", d.Label, rip))
		}
	}
	for _, r := range df.NftRules {
		if hook, _ := chainHook(df, r); (hook == "prerouting" || hook == "output") && strings.Contains(r.Text, "notrack") {
			f.Evidence = append(f.Evidence, fmt.Sprintf("the requests are not tracked: nft %s %s %s handle %d: %s", r.Family, r.Table, r.Chain, r.Handle, r.Text))
		}
	}
	if df.Datapath == "ipvs" {
		f.Remedy = append(f.Remedy, "sysctl -w net.ipv4.vs.conntrack=1   # let conntrack see IPVS connections")
	} else {
		f.Remedy = append(f.Remedy, "# or let conntrack see the requests: remove the notrack rule / route both directions through this director")
	}
	f.Remedy = append(f.Remedy, fmt.Sprintf("# or accept the replies before it: iptables -I FORWARD -s %s -p %s --sport %d -j ACCEPT; nft form: nft insert rule FAMILY TABLE CHAIN ip saddr %s %s sport %d accept", rip, m.proto, m.sport, rip, m.proto, m.sport))
	f.Alternatives = []result.Alternative{{ID: "director-firewall-drops-replies",
		TellApart: "the rule that counted matches only ct state invalid: the replies are INVALID to conntrack, not filtered by address or port"}}
	return f
}
