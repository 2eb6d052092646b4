package classify

import (
	"fmt"
	"net/netip"
	"sort"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

func init() { addRule(ruleDirectorStaticReplyDrop) }

// A drop rule in the director's forward path that would drop the real
// servers' replies can hide behind another fault: when no request reaches
// a real server, no reply exists to be dropped and the wire shows nothing.
// Then the rule itself is the evidence: the first decoded rule of the
// forward hook that fits the reply decides, as the kernel would.
func ruleDirectorStaticReplyDrop(v *view) []result.Finding {
	d := v.director
	if !d.Reached() || !v.cip.IsValid() {
		return nil
	}
	f := d.Facts()
	var out []result.Finding
	for _, sr := range v.in.Services {
		if sr.Service.Proto != "tcp" && sr.Service.Proto != "udp" {
			continue
		}
		for _, r := range sr.Service.RealServers {
			h := v.in.Hosts[r.Label()]
			if h == nil || v.repliesSeen(h) {
				continue // the wire decides where it can
			}
			ap := r.AddrPort()
			m := packetMatch{src: ap.Addr(), dst: v.cip, proto: sr.Service.Proto, sport: int(ap.Port()), dport: 0}
			rule := firstVerdict(f, "forward", m)
			if rule == nil || (rule.Verdict != "drop" && rule.Verdict != "reject") {
				continue
			}
			fd := newFinding("director-firewall-drops-replies", d.Label)
			fd.Service = sr.Service.String()
			fd.Address = ap.String()
			fd.Summary = fmt.Sprintf("a firewall rule on %s would drop the replies from %s (no reply reached the director to confirm it)", d.Label, ap)
			fd.Evidence = []string{
				fmt.Sprintf("nft %s %s %s handle %d%s: %s — the first rule of the forward hook that fits %s %s > %s",
					rule.Family, rule.Table, rule.Chain, rule.Handle, commentOf(*rule), rule.Text, sr.Service.Proto, ap, v.cip),
				"no test connection's reply reached the director: another fault stops the requests first",
			}
			fd.Remedy = []string{fmt.Sprintf("nft delete rule %s %s %s handle %d", rule.Family, rule.Table, rule.Chain, rule.Handle)}
			out = append(out, fd)
		}
	}
	return mergeSameID(out)
}

// repliesSeen says the director's capture holds a reply of one of h's
// services toward the client (not the real server's own pings or
// traceroutes, which are not service traffic).
func (v *view) repliesSeen(h *Host) bool {
	if v.director.Capture == nil {
		return false
	}
	if v.replies == nil {
		// Asked for every real server of every service: the capture is
		// walked once (8000 packets at fifty real servers).
		v.replies = map[netip.AddrPort]bool{}
		cip := v.cip.String()
		for _, p := range v.director.Capture.Packets {
			if p.Dir == "in" && (p.Proto == "tcp" || p.Proto == "udp") && p.Dst == cip {
				if a, err := netip.ParseAddr(p.Src); err == nil {
					v.replies[netip.AddrPortFrom(a, uint16(p.SrcPort))] = true
				}
			}
		}
	}
	for _, s := range v.serviceOf(h) {
		if r, _ := v.realServerEntry(s, h); v.replies[r.AddrPort()] {
			return true
		}
	}
	return false
}

// firstVerdict walks the base chains of a hook by priority and returns the
// first decoded rule with a verdict that fits m; rules that jump are
// skipped (their chains are not followed), and an opaque rule stops the
// walk, since what it matches is unknown.
func firstVerdict(f *obs.Facts, hook string, m packetMatch) *obs.NftRule {
	chains := []obs.NftChain{}
	for _, c := range f.NftChains {
		if c.Hook == hook && (c.Type == "" || c.Type == "filter") {
			chains = append(chains, c)
		}
	}
	sort.SliceStable(chains, func(i, j int) bool { return chains[i].Priority < chains[j].Priority })
	for _, c := range chains {
		for i, r := range f.NftRules {
			if r.Family != c.Family || r.Table != c.Table || r.Chain != c.Name {
				continue
			}
			if r.Opaque {
				return nil
			}
			if r.CtState != "" || r.IIfName != "" || r.OIfName != "" {
				continue // state and interface matches are not judged statically
			}
			if (r.Verdict == "accept" || r.Verdict == "drop" || r.Verdict == "reject") && m.fits(r) {
				if r.Verdict == "accept" {
					break // accepted here; the next base chain still sees it
				}
				return &f.NftRules[i]
			}
		}
	}
	return nil
}

func commentOf(r obs.NftRule) string {
	if r.Comment == "" {
		return ""
	}
	return fmt.Sprintf(" (%q)", r.Comment)
}
