package classify

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

func init() { addRule(ruleFwmarkNotMarked) }

// A firewall-mark service (ipvsadm -A -f MARK) balances packets by their
// mark, so a rule must mark them first. When none matches the clients'
// packets, they carry no mark, no service takes them, and the director's
// own stack answers them as for a missing service (HOWTO Q.3 A.5): a RST
// from the VIP, nothing sent to any real server. The capture says that;
// the marking rules and their counters say why: no rule sets the mark, or
// the rules that do match other packets (another port, protocol or
// address) and counted nothing.
//
// When the director has no balancing entry for the mark at all, the
// service itself is missing: service-missing.
func ruleFwmarkNotMarked(v *view) []result.Finding {
	d := v.director
	if !d.Reached() || d.Capture == nil || !v.cip.IsValid() {
		return nil
	}
	f := d.Facts()
	cip := v.cip.String()
	var out []result.Finding
	for _, sr := range v.in.Services {
		s := sr.Service
		if s.Proto != "fwmark" {
			continue
		}
		vp := s.VIPPort()
		n, fwd := 0, 0
		var sample obs.Packet
		var sampleConn obs.Conn
		for _, c := range sr.Conns {
			ans, p, forwarded := localAnswer(d, c, vp, cip)
			if forwarded {
				fwd++
				continue
			}
			if ans == "" || ans == "udp" || lostForwarding(d, ans, c.Proto, vp) {
				continue
			}
			if n == 0 {
				sample, sampleConn = p, c
			}
			n++
		}
		// Without the director's own answers on the wire (its capture
		// lost packets), the rules alone may still tell: every test
		// connection failed and no marking rule matches its packets.
		blind := n == 0 && fwd == 0 && len(sr.Conns) > 0 && !anyOK(sr.Conns) && d.Capture.Dropped > 0
		if (n == 0 && !blind) || fwd > 0 {
			continue
		}
		var wire []string
		if blind {
			sampleConn = sr.Conns[0]
			wire = []string{fmt.Sprintf("none of the %d test connections to %s (%s) was answered (%s); %s's capture lost %d packets, so its own answers are not on record",
				len(sr.Conns), s, testsOf(s), connResults(sr.Conns), d.Label, d.Capture.Dropped)}
		} else {
			wire = []string{
				fmt.Sprintf("%s %s out: %s", d.Label, sample.Iface, fmtPacket(sample)),
				fmt.Sprintf("%d of %d test connections to %s (%s) were answered by %s itself from %s; none was sent to a real server", n, len(sr.Conns), s, testsOf(s), d.Label, vp.Addr()),
			}
		}
		bal := markBalancers(f, s.Mark)
		if len(bal) == 0 {
			fd := newFinding("service-missing", d.Label)
			fd.Service = s.String()
			fd.Interface = v.ingress()
			fd.Summary = fmt.Sprintf("%s has no balancing entry for firewall mark %d: the marked packets reach its own stack", d.Label, s.Mark)
			fd.Evidence = append(wire, fmt.Sprintf("%s: no IPVS fwmark service %d and no nftables DNAT rule matching meta mark %d", d.Label, s.Mark, s.Mark))
			fd.Remedy = []string{fmt.Sprintf("ipvsadm -A -f %d -s %s   # then add the real servers with ipvsadm -a -f %d -r RIP -m", s.Mark, s.Scheduler, s.Mark)}
			out = append(out, fd)
			continue
		}
		cport := 0
		if ap, err := parseAP(sampleConn.Remote); err == nil {
			cport = ap
		}
		m := packetMatch{src: v.cip, dst: vp.Addr(), proto: sampleConn.Proto, dport: cport}
		markers := markSetters(d, s.Mark)
		fd := newFinding("fwmark-not-marked", d.Label)
		fd.Service = s.String()
		fd.Interface = v.ingress()
		fd.Evidence = append(wire, "balancing by mark: "+bal[0])
		fits := 0
		for _, mk := range markers {
			ok := mk.rule == nil || m.fits(*mk.rule)
			verdict := "does not match " + fmt.Sprintf("%s %s:%d", m.proto, m.dst, m.dport)
			if ok {
				fits++
				verdict = "would match the test packets"
			}
			if mk.delta >= 0 {
				verdict += fmt.Sprintf("; counter +%d during the test", mk.delta)
			}
			fd.Evidence = append(fd.Evidence, mk.desc+": "+verdict)
		}
		if blind && len(markers) > 0 && fits > 0 {
			continue // a rule would mark them: the wire was needed to say more
		}
		switch {
		case len(markers) == 0:
			fd.Summary = fmt.Sprintf("no rule on %s sets firewall mark %d: the packets of %s are not marked, and the director's own stack answers them", d.Label, s.Mark, s)
			fd.Evidence = append(fd.Evidence, fmt.Sprintf("%s: no nftables rule sets meta mark %d and no iptables MARK target sets it", d.Label, s.Mark))
		case fits == 0:
			fd.Summary = fmt.Sprintf("the rule that sets firewall mark %d on %s matches other packets, not %s %s:%d: they are not marked, and the director's own stack answers them", s.Mark, d.Label, m.proto, m.dst, m.dport)
		default:
			fd.Summary = fmt.Sprintf("the packets of %s reach the director unmarked: no rule that sets firewall mark %d took them", s, s.Mark)
			fd.Alternatives = []result.Alternative{{ID: "service-missing",
				TellApart: "a marking rule looks right but the packets were not balanced: check that it runs before the balancing (mangle prerouting, priority below dstnat) and that the mark values agree"}}
		}
		fd.Remedy = markRemedy(d, s, m)
		out = append(out, fd)
	}
	return out
}

func testsOf(s topology.Service) string {
	var ts []string
	for _, t := range s.Tests() {
		ts = append(ts, t.Proto+" "+t.Dst.String())
	}
	return strings.Join(ts, ", ")
}

func parseAP(s string) (int, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return 0, fmt.Errorf("no port in %q", s)
	}
	return strconv.Atoi(s[i+1:])
}

// markBalancers describes what balances packets with mark m: IPVS fwmark
// services, nftables DNAT rules matching the mark.
func markBalancers(f *obs.Facts, m uint32) []string {
	var out []string
	if f == nil {
		return nil
	}
	if f.IPVS != nil {
		for _, s := range f.IPVS.Services {
			if s.Proto == "fwmark" && s.Mark == m {
				out = append(out, fmt.Sprintf("ipvsadm -Ln: FWM %d %s, %d real servers", m, s.Scheduler, len(s.Dests)))
			}
		}
	}
	for _, r := range f.NftRules {
		if r.NAT == "dnat" && r.MarkMatch != nil && *r.MarkMatch == m {
			out = append(out, fmt.Sprintf("nft %s %s %s handle %d: %s", r.Family, r.Table, r.Chain, r.Handle, r.Text))
		}
	}
	return out
}

// marker is a rule that sets a mark: an nft rule (decoded, with its
// counter's rise, -1 without counter) or an iptables MARK target.
type marker struct {
	desc  string
	rule  *obs.NftRule // nil for iptables: its matches are not decoded
	delta int64
}

// markSetters lists the rules on h that set mark m.
func markSetters(h *Host, m uint32) []marker {
	f := h.Facts()
	if f == nil {
		return nil
	}
	before := map[string]uint64{}
	if h.Before != nil {
		for _, r := range h.Before.NftRules {
			if r.Packets != nil {
				before[nftKey(r)] = *r.Packets
			}
		}
	}
	var out []marker
	for i, r := range f.NftRules {
		if r.Mark == nil || *r.Mark != m {
			continue
		}
		mk := marker{desc: fmt.Sprintf("nft %s %s %s handle %d: %s", r.Family, r.Table, r.Chain, r.Handle, r.Text), rule: &f.NftRules[i], delta: -1}
		if r.Packets != nil && h.Before != nil && h.After != nil {
			mk.delta = int64(*r.Packets) - int64(before[nftKey(r)])
		}
		out = append(out, mk)
	}
	for _, ln := range iptablesRules(f.IptablesSave, "mangle") {
		if !strings.Contains(ln.rule, "-j MARK") {
			continue
		}
		val := flagValue(ln.rule, "--set-mark")
		if val == "" {
			val, _, _ = strings.Cut(flagValue(ln.rule, "--set-xmark"), "/")
		}
		if n, err := strconv.ParseUint(val, 0, 32); err == nil && uint32(n) == m {
			out = append(out, marker{desc: "iptables -t mangle " + ln.rule, delta: -1})
		}
	}
	return out
}

func markRemedy(d *Host, s topology.Service, m packetMatch) []string {
	f := d.Facts()
	if f != nil && f.Datapath == "ipvs" {
		return []string{fmt.Sprintf("iptables -t mangle -A PREROUTING -d %s -p %s --dport %d -j MARK --set-mark %d   # on %s", m.dst, m.proto, m.dport, s.Mark, d.Label)}
	}
	return []string{
		fmt.Sprintf("nft add rule ip mangle PREROUTING ip daddr %s %s dport %d meta mark set %d   # on %s, in a prerouting chain that runs before the balancing (priority mangle)", m.dst, m.proto, m.dport, s.Mark, d.Label),
		fmt.Sprintf("# iptables form: iptables -t mangle -A PREROUTING -d %s -p %s --dport %d -j MARK --set-mark %d", m.dst, m.proto, m.dport, s.Mark),
	}
}
