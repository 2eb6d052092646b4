package classify

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// What the real servers' own firewalls did to the test traffic (HOWTO Q.4
// A.3, A.5): shared by rs-firewall-reject, rs-firewall-drops-requests,
// rs-firewall-drops-replies and rs-rpfilter.

// rsFwHit is a real server's firewall rule that matched test traffic: its
// counter rose during the test.
type rsFwHit struct {
	desc    string // how the rule reads, with table, chain and handle or comment
	delta   int64
	verdict string // drop or reject
	remedy  []string
}

// rsHookDir maps a netfilter hook (nft) or a built-in chain (iptables) to
// the direction of the packets it sees on a host: "in" (toward the host's
// own sockets), "out" (from them), "" (a chain jumped to, or forward).
func rsHookDir(hook string) string {
	switch strings.ToLower(hook) {
	case "input", "prerouting":
		return "in"
	case "output", "postrouting":
		return "out"
	}
	return ""
}

// rsFirewallHits lists the drop/reject rules of h that fit m, that can see
// packets going dir ("in" or "out"), and whose counter rose during the
// test: nft rules and `iptables-save -c` lines. A rule written by
// iptables-nft appears in both; it is told once, in iptables form.
func rsFirewallHits(h *Host, m packetMatch, dir string) []rsFwHit {
	if h == nil || h.Before == nil || h.After == nil {
		return nil
	}
	var out []rsFwHit
	after := h.After
	iptNft := strings.Contains(after.IptablesSave, "iptables-nft-save")
	before := map[string]uint64{}
	for _, r := range h.Before.NftRules {
		if r.Packets != nil {
			before[nftKey(r)] = *r.Packets
		}
	}
	for _, r := range after.NftRules {
		if (r.Verdict != "drop" && r.Verdict != "reject") || r.Packets == nil || !m.fits(r) {
			continue
		}
		if r.Opaque && iptNft && r.Family == "ip" {
			continue // told below from iptables-save
		}
		hook, _ := chainHook(h.Facts(), r)
		if d := rsHookDir(hook); d != "" && d != dir {
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
		hit := rsFwHit{desc: desc, delta: d, verdict: r.Verdict,
			remedy: []string{fmt.Sprintf("nft delete rule %s %s %s handle %d   # on %s", r.Family, r.Table, r.Chain, r.Handle, h.Label)}}
		chain := "INPUT"
		if dir == "out" {
			chain = "OUTPUT"
		}
		hit.remedy = append(hit.remedy, fmt.Sprintf("or, where iptables manages this host's firewall: iptables -I %s %s -j ACCEPT   # on %s, before the rule", chain, iptSpec(m, dir), h.Label))
		out = append(out, hit)
	}
	bIpt := map[string]int64{}
	for _, l := range iptablesRules(h.Before.IptablesSave, "filter") {
		bIpt[l.rule] = l.packets
	}
	for _, l := range iptablesRules(after.IptablesSave, "filter") {
		verdict := ""
		switch {
		case strings.Contains(l.rule, "-j DROP"):
			verdict = "drop"
		case strings.Contains(l.rule, "-j REJECT"):
			verdict = "reject"
		}
		if verdict == "" || l.packets < 0 || !rsIptFits(l.rule, m) {
			continue
		}
		chain := strings.Fields(l.rule)[1]
		if d := rsHookDir(chain); d != "" && d != dir {
			continue
		}
		d := l.packets - bIpt[l.rule]
		if d <= 0 {
			continue
		}
		hit := rsFwHit{desc: "iptables -t filter " + l.rule, delta: d, verdict: verdict,
			remedy: []string{fmt.Sprintf("iptables -D%s   # on %s", l.rule[2:], h.Label)}}
		if iptNft {
			hit.remedy = append(hit.remedy, fmt.Sprintf("or in nft form: nft -a list chain ip filter %s, then nft delete rule ip filter %s handle N   # on %s", chain, chain, h.Label))
		} else {
			hit.remedy = append(hit.remedy, fmt.Sprintf("(iptables-legacy: iptables-legacy -D%s)", l.rule[2:]))
		}
		out = append(out, hit)
	}
	return out
}

// iptSpec is the iptables match of the test packet m.
func iptSpec(m packetMatch, dir string) string {
	if dir == "out" {
		return fmt.Sprintf("-s %s -p %s --sport %d", m.src, m.proto, m.sport)
	}
	return fmt.Sprintf("-d %s -p %s --dport %d", m.dst, m.proto, m.dport)
}

// rsIptFits tests an iptables-save rule's address, protocol and port
// matches against m; what it cannot read (negations, other matches) it
// lets pass, and the counter speaks.
func rsIptFits(rule string, m packetMatch) bool {
	if strings.Contains(rule, " ! ") {
		return true
	}
	if s := flagValue(rule, "-s"); s != "" && !prefixCovers(s, m.src) {
		return false
	}
	if d := flagValue(rule, "-d"); d != "" && !prefixCovers(d, m.dst) {
		return false
	}
	if p := flagValue(rule, "-p"); p != "" && p != m.proto {
		return false
	}
	if p := flagValue(rule, "--sport"); p != "" && p != strconv.Itoa(m.sport) {
		return false
	}
	if p := flagValue(rule, "--dport"); p != "" && p != strconv.Itoa(m.dport) {
		return false
	}
	return true
}

// rsSilentReqs is what a real server did with test requests that reached it and
// got nothing back on the wire: no reply, no RST, no ICMP.
type rsSilentReqs struct {
	n       int        // silent requests (test connections)
	sample  obs.Packet // one of them as it arrived
	req     packetMatch
	rep     packetMatch
	service string
	addr    string
}

// rsSilent finds, per service, the test connections whose requests arrived
// at the real server h and that it sent nothing for.
func (v *view) rsSilent(h *Host) []rsSilentReqs {
	if h == nil || h.Capture == nil || !v.cip.IsValid() {
		return nil
	}
	// Several rules ask for every real server's: worked out once.
	if out, ok := v.silent[h]; ok {
		return out
	}
	if v.silent == nil {
		v.silent = map[*Host][]rsSilentReqs{}
	}
	out := v.rsSilentScan(h)
	v.silent[h] = out
	return out
}

func (v *view) rsSilentScan(h *Host) []rsSilentReqs {
	cip := v.cip.String()
	var out []rsSilentReqs
	for _, sr := range v.in.Services {
		r, ok := v.realServerEntry(sr.Service, h)
		if !ok {
			continue
		}
		ap := r.AddrPort()
		rip := ap.Addr().String()
		s := rsSilentReqs{service: sr.Service.String(), addr: ap.String()}
		for _, c := range sr.Conns {
			if v.rsOf(c) != h {
				continue
			}
			var in *obs.Packet
			answered := false
			for _, p := range flowPackets(h, c) {
				switch {
				case p.Dir == "in" && p.Src == cip && p.Dst == rip && in == nil:
					in = p
				case p.Dir == "out" && (p.Src == rip || p.Proto == "icmp"):
					answered = true
				}
			}
			if in == nil || answered {
				continue
			}
			if s.n == 0 {
				s.sample = *in
				src, _ := netip.ParseAddr(in.Src)
				dst, _ := netip.ParseAddr(in.Dst)
				s.req = packetMatch{src: src, dst: dst, proto: in.Proto, sport: in.SrcPort, dport: in.DstPort}
				s.rep = packetMatch{src: dst, dst: src, proto: in.Proto, sport: in.DstPort, dport: in.SrcPort}
			}
			s.n++
		}
		if s.n > 0 {
			out = append(out, s)
		}
	}
	return out
}

// rsRIPLocal says every RIP the topology gives h is one of its addresses
// (unknown facts count as local: nothing to judge).
func (v *view) rsRIPLocal(h *Host) bool {
	return len(v.missingRIPs(h)) == 0
}

// silentCause says why h answered nothing to the silent requests s: a drop
// rule for the requests, a drop rule for the replies, or strict rp_filter
// on the interface the requests arrive on ("" when none of them shows).
// A missing RIP (rs-rip-missing) is its own finding and explains silence
// by itself.
func (v *view) silentCause(h *Host, s rsSilentReqs) (string, []rsFwHit) {
	if !v.rsRIPLocal(h) {
		return "", nil
	}
	in, out := rsFirewallHits(h, s.req, "in"), rsFirewallHits(h, s.rep, "out")
	if len(in)+len(out) > 0 && onlyRejects(in) && onlyRejects(out) {
		// The rules that counted them answer with ICMP, and the kernel
		// rate-limits ICMP errors per destination (icmp_ratelimit): a
		// rejected request can go unanswered. rs-firewall-reject's.
		return "", nil
	}
	if len(in) > 0 {
		return "rs-firewall-drops-requests", in
	}
	if len(out) > 0 {
		return "rs-firewall-drops-replies", out
	}
	if v.rsRPFilterDrops(h, s.sample.Iface) {
		return "rs-rpfilter", nil
	}
	return "", nil
}

func onlyRejects(hits []rsFwHit) bool {
	for _, h := range hits {
		if h.verdict != "reject" {
			return false
		}
	}
	return true
}

// rsRPFilterDrops says the reverse-path test of h drops the client's
// packets arriving on iface: strict rp_filter there and the route back to
// the client leaving by another interface (or loose and no route at all).
func (v *view) rsRPFilterDrops(h *Host, iface string) bool {
	rip := v.rip(h)
	rg := routeGet(h, v.cip.String(), rip.String(), "")
	if rg == nil || iface == "" {
		return false
	}
	switch rpFilter(h, iface) {
	case 1:
		return rg.Error != "" || (rg.Dev != "" && rg.Dev != iface)
	case 2:
		return rg.Error != ""
	}
	return false
}

// rsSilentFindings builds the findings of one id from the silent requests
// of every real server: build fills in the id's own words.
func (v *view) rsSilentFindings(id string, build func(h *Host, s rsSilentReqs, hits []rsFwHit) result.Finding) []result.Finding {
	var out []result.Finding
	for _, h := range v.rs {
		if !h.Reached() {
			continue
		}
		for _, s := range v.rsSilent(h) {
			got, hits := v.silentCause(h, s)
			if got != id {
				continue
			}
			f := build(h, s, hits)
			f.Service, f.Address = s.service, s.addr
			if f.Interface == "" {
				f.Interface = s.sample.Iface
			}
			out = append(out, f)
		}
	}
	// One cause on one host is one finding, whatever services it hits.
	merged := mergeSameID(out)
	for i := range merged {
		for _, f := range out {
			if f.Host == merged[i].Host && f.Service != merged[i].Service {
				merged[i].Service = ""
			}
		}
		if merged[i].Address == "" {
			if h := v.in.Hosts[merged[i].Host]; h != nil {
				merged[i].Address = firstAddress(v, h)
			}
		}
	}
	return merged
}

// silentWire is the wire evidence of silent requests.
func (v *view) silentWire(h *Host, s rsSilentReqs) string {
	return fmt.Sprintf("%s %s in: %s — %d test requests for %s arrived and nothing left %s for them (no reply, RST or ICMP)",
		h.Label, s.sample.Iface, fmtPacket(s.sample), s.n, s.addr, h.Label)
}

func rsHitEvidence(hits []rsFwHit) (ev, remedy []string) {
	for _, r := range hits {
		ev = append(ev, fmt.Sprintf("%s — counter +%d during the test", r.desc, r.delta))
		remedy = append(remedy, r.remedy...)
	}
	return ev, remedy
}
