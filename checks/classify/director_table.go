package classify

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

func init() {
	addRule(ruleServiceMissing)
	addRule(ruleRSWeightZero)
}

// svcEntry is what the director's balancing table says about one service
// of the topology: the IPVS service, or the nft DNAT rules for VIP:VPORT.
type svcEntry struct {
	known bool   // the table could be read
	found bool   // the table has an entry for the service
	leave bool   // the entry sends to no real server (every weight 0)
	how   string // the entry as read, for evidence
	// dests: real server address (and "addr:port" where the table names
	// the port) -> weight; weight 0 is a quiesced real server.
	dests map[string]int
}

// weightOf is a real server's weight in the entry, and whether it is there.
func (e svcEntry) weightOf(ap netip.AddrPort) (int, bool) {
	if w, ok := e.dests[ap.String()]; ok {
		return w, true
	}
	w, ok := e.dests[ap.Addr().String()]
	return w, ok
}

// serviceTable reads the director's entry for s from its facts.
func (v *view) serviceTable(s topology.Service) svcEntry {
	d := v.director
	if !d.Reached() || (s.Proto != "tcp" && s.Proto != "udp" && s.Proto != "fwmark") {
		return svcEntry{}
	}
	f := d.Facts()
	vp := s.VIPPort()
	if f.IPVS != nil && (f.Datapath == "ipvs" || len(f.IPVS.Services) > 0) {
		e := svcEntry{known: true, dests: map[string]int{}}
		for _, is := range f.IPVS.Services {
			if is.Proto != s.Proto || (s.Proto == "fwmark" && is.Mark != s.Mark) || (s.Proto != "fwmark" && is.Addr != vp.String()) {
				continue
			}
			e.found = true
			e.how = fmt.Sprintf("ipvsadm -Ln: %s %s %s", strings.ToUpper(is.Proto), is.Addr, is.Scheduler)
			pos := 0
			for _, dst := range is.Dests {
				e.dests[dst.Addr] = dst.Weight
				e.how += fmt.Sprintf(" -> %s weight %d", dst.Addr, dst.Weight)
				if dst.Weight > 0 {
					pos++
				}
			}
			e.leave = pos == 0
		}
		return e
	}
	if f.NftRules == nil {
		return svcEntry{}
	}
	e := svcEntry{known: true, dests: map[string]int{}}
	matches := func(r obs.NftRule) bool {
		if s.Proto == "fwmark" {
			return r.MarkMatch != nil && *r.MarkMatch == s.Mark
		}
		if r.Proto != "" && r.Proto != s.Proto {
			return false
		}
		if r.DPort != 0 && r.DPort != int(vp.Port()) {
			return false
		}
		return r.DAddr != "" && prefixCovers(r.DAddr, vp.Addr())
	}
	var leaves []string
	for _, r := range f.NftRules {
		if !matches(r) {
			continue
		}
		hook, _ := chainHook(f, r)
		desc := fmt.Sprintf("nft %s %s %s handle %d: %s", r.Family, r.Table, r.Chain, r.Handle, r.Text)
		switch {
		case r.NAT == "dnat" && (hook == "prerouting" || hook == "output"):
			e.found = true
			if e.how == "" {
				e.how = desc
			}
			for _, t := range r.NATTo {
				e.dests[t]++
			}
		case (r.Verdict == "reject" || r.Verdict == "drop") && r.DPort != 0 && r.DAddr == vp.Addr().String():
			// A rule for exactly this service that sends to no real
			// server: the nft form of a service whose weights are all 0.
			leaves = append(leaves, desc)
		}
	}
	if !e.found && len(leaves) > 0 {
		e.found, e.leave, e.how = true, true, leaves[0]
	}
	return e
}

// outOfTable says the director's table leaves the real server r of s out
// (weight 0, or not in the map): no test connection can reach it, and the
// rs-weight-zero or service-missing finding says so; it is not unchecked.
func (v *view) outOfTable(s topology.Service, r topology.RealServer) bool {
	e := v.serviceTable(s)
	if !e.known {
		return false
	}
	if !e.found {
		return true
	}
	w, ok := e.weightOf(r.AddrPort())
	return !ok || w == 0
}

// localAnswer describes how the director's own stack answered a test
// connection: a RST, an ICMP error or a SYN+ACK from the VIP ("" when it
// did not), and whether the connection was forwarded to anything.
func localAnswer(d *Host, c obs.Conn, vip netip.AddrPort, cip string) (ans string, pkt obs.Packet, forwarded bool) {
	for _, p := range flowPackets(d, c) {
		if p.Dir != "out" {
			continue
		}
		if p.Src == cip && p.Dst != vip.Addr().String() && p.Proto == c.Proto {
			forwarded = true
		}
		if p.Src != vip.Addr().String() || p.Dst != cip || ans != "" {
			continue
		}
		switch {
		case p.Proto == "tcp" && strings.HasPrefix(p.Flags, "R"):
			ans, pkt = "rst", *p
		case p.Proto == "tcp" && p.Flags == "S.":
			ans, pkt = "synack", *p
		case p.Proto == "icmp" && p.ICMPType == 3:
			ans, pkt = "icmp", *p
		case p.Proto == "udp":
			ans, pkt = "udp", *p
		}
	}
	return ans, pkt, forwarded
}

// The virtual service is missing from the director's table, or has no real
// server with weight > 0, so the director's own stack answers the client
// (HOWTO Q.3 A.5): a RST (nothing listens on the VIP), ICMP port
// unreachable (IPVS with every weight 0, ip_vs_leave), or a local
// listener's SYN+ACK. The capture says the director answered and sent
// nothing to any RIP; the table read says why.
func ruleServiceMissing(v *view) []result.Finding {
	d := v.director
	if !d.Reached() || d.Capture == nil || !v.cip.IsValid() {
		return nil
	}
	var out []result.Finding
	cip := v.cip.String()
	for _, sr := range v.in.Services {
		s := sr.Service
		if s.Proto != "tcp" && s.Proto != "udp" {
			continue
		}
		vp := s.VIPPort()
		n, fwd := 0, 0
		kinds := map[string]int{}
		var sample obs.Packet
		for _, c := range sr.Conns {
			ans, p, forwarded := localAnswer(d, c, vp, cip)
			if forwarded {
				fwd++
				continue
			}
			if ans == "" || ans == "udp" || lostForwarding(d, ans, s.Proto, vp) {
				continue
			}
			if n == 0 {
				sample = p
			}
			n++
			kinds[ans]++
		}
		if n == 0 && fwd == 0 && !anyOK(sr.Conns) {
			// No test traffic, or none seen answered: the IPVS table,
			// which is the whole truth about the director's services,
			// still says whether the service is there (a capture that
			// lost the director's RSTs must not hide a missing service).
			if f, ok := v.serviceMissingFromTable(s); ok {
				if len(sr.Conns) > 0 {
					f.Summary = fmt.Sprintf("%s is not in %s's IPVS table", s, d.Label)
					f.Evidence = append(f.Evidence, fmt.Sprintf("none of the %d test connections to %s was answered (%s)", len(sr.Conns), s, connResults(sr.Conns)))
				}
				out = append(out, f)
			}
			continue
		}
		if n == 0 || fwd > 0 {
			continue
		}
		e := v.serviceTable(s)
		f := newFinding("service-missing", d.Label)
		f.Service = s.String()
		f.Interface = v.ingress()
		f.Evidence = []string{
			fmt.Sprintf("%s %s out: %s", d.Label, sample.Iface, fmtPacket(sample)),
			fmt.Sprintf("%d of %d test connections to %s were answered by %s itself from %s; none was sent to a real server", n, len(sr.Conns), s, d.Label, vp.Addr()),
		}
		switch {
		case kinds["synack"] > 0:
			f.Evidence = append(f.Evidence, fmt.Sprintf("a local socket on %s accepted them: %s", d.Label, localListener(d, s.Proto, vp)))
		case kinds["icmp"] > 0:
			f.Evidence = append(f.Evidence, "ICMP port unreachable from the VIP: what IPVS sends when the service has no real server with weight > 0 (ip_vs_leave), or a reject rule for the VIP")
		case kinds["rst"] > 0:
			f.Evidence = append(f.Evidence, fmt.Sprintf("RST from the VIP: nothing balances %s and nothing listens on it on %s", vp, d.Label))
		}
		var rips []string
		for _, r := range s.RealServers {
			rips = append(rips, r.AddrPort().String())
		}
		switch {
		case e.known && !e.found:
			f.Summary = fmt.Sprintf("%s is not in %s's balancing table: the director's own stack answers", s, d.Label)
			f.Evidence = append(f.Evidence, fmt.Sprintf("%s's table (%s) has no entry for %s %s", d.Label, tableKind(d), s.Proto, vp))
		case e.found && e.leave:
			f.Summary = fmt.Sprintf("%s has no real server with weight > 0 on %s: the director answers port unreachable", s, d.Label)
			f.Evidence = append(f.Evidence, fmt.Sprintf("the table's entry sends to no real server: %s", e.how))
		case e.found && d.Capture.Dropped > 0:
			continue // the table has it, and the capture lost packets: no evidence against it
		case e.found:
			f.Summary = fmt.Sprintf("the test connections to %s were answered by %s itself, although its table has the service", s, d.Label)
			f.Evidence = append(f.Evidence, "the table's entry: "+e.how)
			f.Alternatives = []result.Alternative{{ID: "director-firewall-drops-requests",
				TellApart: "a reject rule for the VIP on the director answers the same way; its counter rises during the test (nft list ruleset, iptables-save -c)"}}
		default:
			f.Summary = fmt.Sprintf("the test connections to %s were answered by %s itself; its table could not be read", s, d.Label)
		}
		flag := map[string]string{"tcp": "-t", "udp": "-u"}[s.Proto]
		if e.found && e.leave {
			for _, r := range rips {
				f.Remedy = append(f.Remedy, fmt.Sprintf("ipvsadm -e %s %s -r %s -m -w 1", flag, vp, r))
			}
		} else {
			f.Remedy = append(f.Remedy, fmt.Sprintf("ipvsadm -A %s %s -s %s", flag, vp, orDefault(s.Scheduler, "rr")))
			for _, r := range rips {
				f.Remedy = append(f.Remedy, fmt.Sprintf("ipvsadm -a %s %s -r %s -m -w 1", flag, vp, r))
			}
		}
		f.Remedy = append(f.Remedy, fmt.Sprintf("# nftables datapath: %s", nftServiceRule(d, s)))
		out = append(out, f)
	}
	return out
}

// serviceMissingFromTable judges a service that no test connection tried
// (--static, or the client could not run them) from the table alone: only
// where IPVS balances, since its table is the whole truth about what the
// director runs; nftables rules can balance in forms the facts do not
// parse. The kernel's modules say why keepalived could not add it.
func (v *view) serviceMissingFromTable(s topology.Service) (result.Finding, bool) {
	d := v.director
	f := d.Facts()
	if f == nil || f.IPVS == nil {
		return result.Finding{}, false
	}
	e := v.serviceTable(s)
	if !e.known || e.found {
		return result.Finding{}, false
	}
	fd := newFinding("service-missing", d.Label)
	fd.Service = s.String()
	fd.Summary = fmt.Sprintf("%s is not in %s's IPVS table (read without test traffic)", s, d.Label)
	fd.Evidence = []string{fmt.Sprintf("ipvsadm -Ln on %s lists %d services, none of them %s", d.Label, len(f.IPVS.Services), s)}
	vp := s.VIPPort()
	svc := ipvsadmService(s.Proto, vp.String(), s.Mark)
	sched := orDefault(s.Scheduler, "wlc")
	if has, known := f.Modules.Has("ip_vs_" + sched); known && !has {
		fd.Evidence = append(fd.Evidence, fmt.Sprintf("the scheduler %s has no module in this kernel: ip_vs_%s is not loaded, built in or in modules.dep, so the service cannot be added with it", sched, sched))
		fd.Remedy = append(fd.Remedy, "# choose a scheduler this kernel has: "+strings.Join(schedulersOf(f.Modules), ", "))
	}
	fd.Remedy = append(fd.Remedy, fmt.Sprintf("ipvsadm -A %s -s %s", svc, sched))
	for _, r := range s.RealServers {
		fd.Remedy = append(fd.Remedy, fmt.Sprintf("ipvsadm -a %s -r %s %s -w %d", svc, r.AddrPort(), ipvsadmForward(r.Forward), max(r.W(), 1)))
	}
	if src := v.in.Topology.Source; src != nil && src.Kind == "keepalived" {
		fd.Remedy = append([]string{"# keepalived adds it from " + src.File + ": look at its log (journalctl -u keepalived) for why it did not"}, fd.Remedy...)
	}
	return fd, true
}

func anyOK(cs []obs.Conn) bool {
	for _, c := range cs {
		if c.Result == "ok" {
			return true
		}
	}
	return false
}

// connResults counts the test connections' results: "refused 3, timeout 1".
func connResults(cs []obs.Conn) string {
	n := map[string]int{}
	var order []string
	for _, c := range cs {
		if n[c.Result] == 0 {
			order = append(order, c.Result)
		}
		n[c.Result]++
	}
	var parts []string
	for _, r := range order {
		parts = append(parts, fmt.Sprintf("%s %d", r, n[r]))
	}
	return strings.Join(parts, ", ")
}

// schedulersOf lists the IPVS schedulers a kernel has.
func schedulersOf(m *obs.Modules) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range [][]string{m.Loaded, m.Builtin, m.Loadable} {
		for _, n := range l {
			sched, ok := strings.CutPrefix(n, "ip_vs_")
			if !ok || seen[sched] || sched == "ftp" || sched == "pe_sip" {
				continue
			}
			seen[sched] = true
			out = append(out, sched)
		}
	}
	sort.Strings(out)
	return out
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func tableKind(d *Host) string {
	if f := d.Facts(); f != nil && f.Datapath == "ipvs" {
		return "IPVS"
	}
	return "nftables DNAT rules"
}

// nftServiceRule is the nft DNAT rule that would balance s, in the chain
// that holds the director's other DNAT rules where there is one.
func nftServiceRule(d *Host, s topology.Service) string {
	fam, table, chain := "ip", "nat", "prerouting"
	if f := d.Facts(); f != nil {
		for _, r := range f.NftRules {
			if hook, _ := chainHook(f, r); r.NAT == "dnat" && hook == "prerouting" {
				fam, table, chain = r.Family, r.Table, r.Chain
				break
			}
		}
	}
	var m []string
	i := 0
	for _, r := range s.RealServers {
		for w := 0; w < max(r.W(), 0); w++ {
			m = append(m, fmt.Sprintf("%d : %s", i, r.AddrPort().Addr()))
			i++
		}
	}
	vp := s.VIPPort()
	return fmt.Sprintf("nft add rule %s %s %s ip daddr %s %s dport %d counter dnat to numgen inc mod %d map { %s }",
		fam, table, chain, vp.Addr(), s.Proto, vp.Port(), max(i, 1), strings.Join(m, ", "))
}

// lostForwarding says a SYN+ACK from the VIP, with no forwarded packet on
// record, can be the real server's translated answer whose forwarding the
// director's capture lost: only a local listener makes it the director's
// own, and the capture lost packets.
func lostForwarding(d *Host, ans, proto string, vp netip.AddrPort) bool {
	return ans == "synack" && d.Capture != nil && d.Capture.Dropped > 0 && localListener(d, proto, vp) == notListening
}

// notListening is localListener's answer when no socket listens.
const notListening = "(not in the socket list)"

func localListener(d *Host, proto string, vp netip.AddrPort) string {
	if f := d.Facts(); f != nil {
		for _, l := range f.Listeners {
			if l.Proto != proto {
				continue
			}
			if la, err := netip.ParseAddrPort(l.Addr); err == nil && la.Port() == vp.Port() && (la.Addr() == vp.Addr() || la.Addr().IsUnspecified()) {
				return fmt.Sprintf("%s listens on %s (socket inode %d)", proto, l.Addr, l.Inode)
			}
		}
	}
	return notListening
}

// A real server has weight 0 in the director's table, or is left out of
// its map, while the service is there (warning): it is never chosen. The
// table read decides; no test connection reaching it is the evidence.
// Compared with the topology: a weight the topology gives but the table
// does not is named. A service missing altogether is service-missing's.
func ruleRSWeightZero(v *view) []result.Finding {
	d := v.director
	if !d.Reached() {
		return nil
	}
	byRS := map[string]*result.Finding{}
	var order []string
	for _, sr := range v.in.Services {
		s := sr.Service
		e := v.serviceTable(s)
		if !e.known || !e.found {
			continue
		}
		for _, r := range s.RealServers {
			w, ok := e.weightOf(r.AddrPort())
			if ok && w > 0 {
				continue
			}
			label := r.Label()
			f := byRS[label]
			if f == nil {
				nf := newFinding("rs-weight-zero", label)
				nf.Address = r.AddrPort().String()
				nf.Service = s.String()
				f = &nf
				byRS[label] = f
				order = append(order, label)
			} else if f.Service != s.String() {
				f.Service = ""
			}
			state := "weight 0"
			if !ok {
				state = "not in the map (weight 0)"
			}
			want := fmt.Sprintf("the topology gives it weight %d", r.W())
			if r.W() == 0 {
				want = "as the topology says (quiesced)"
			}
			f.Evidence = append(f.Evidence, fmt.Sprintf("%s: %s is %s in %s's entry for %s, %s: %s", s, r.AddrPort(), state, d.Label, s, want, e.how))
			hit := 0
			for _, c := range sr.Conns {
				if h := v.rsOf(c); h != nil && h.Label == label {
					hit++
				}
			}
			if len(sr.Conns) > 0 {
				f.Evidence = append(f.Evidence, fmt.Sprintf("%d of %d test connections to %s reached %s", hit, len(sr.Conns), s, label))
			}
			flag := map[string]string{"tcp": "-t", "udp": "-u"}[s.Proto]
			if r.W() > 0 {
				f.Remedy = append(f.Remedy, fmt.Sprintf("ipvsadm -e %s %s -r %s -m -w %d", flag, s.VIPPort(), r.AddrPort(), r.W()),
					"# nftables datapath: replace the service's DNAT rule with one whose map has it again: "+nftServiceRule(d, s))
			}
		}
	}
	var out []result.Finding
	sort.Strings(order)
	for _, l := range order {
		f := byRS[l]
		f.Summary = fmt.Sprintf("%s is never chosen: weight 0 (or left out) in %s's table", l, d.Label)
		if len(f.Remedy) == 1 {
			f.Remedy = append([]string{"# nothing to do if the real server is quiesced on purpose"}, f.Remedy...)
		}
		out = append(out, *f)
	}
	return out
}
