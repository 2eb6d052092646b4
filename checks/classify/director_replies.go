package classify

import (
	"fmt"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

func init() { addRule(ruleDirectorDropsReplies) }

// Replies that reach the director from a real server and never leave it
// toward the client (HOWTO Q.3 A.2). The capture says that they die in
// the director; the static picture and the counters say why: a drop rule
// whose counter rose, strict rp_filter with the route back to the RIP on
// another interface, or a FORWARD policy drop. Forwarding switched off is
// its own finding and is left to that rule.
func ruleDirectorDropsReplies(v *view) []result.Finding {
	d := v.director
	if !d.Reached() || d.Capture == nil || sysctl(d, "net.ipv4.ip_forward") == "0" {
		return nil
	}
	if link, _ := v.clientOnDirector(); link != "" {
		return nil // the replies are for the director itself: delivered, not forwarded
	}
	var out []result.Finding
	cip := v.cip.String()
	for _, h := range v.rs {
		rip := v.rip(h)
		_, dipIface := v.dipFor(rip)
		// Only connections whose reply arrived and did not leave count:
		// another service to the same real server may be fine.
		lost := 0
		var sample string
		var m packetMatch
		for _, sr := range v.in.Services {
			vip := sr.Service.VIPPort().Addr().String()
			for _, c := range sr.Conns {
				if v.rsOf(c) != h {
					continue
				}
				var in *obs.Packet
				outOK := false
				for _, p := range flowPackets(d, c) {
					if p.Dir == "in" && p.Src == rip.String() && p.Dst == cip && in == nil {
						in = p
					}
					if p.Dir == "out" && p.Src == vip && p.Dst == cip {
						outOK = true
					}
				}
				// A connection the client completed got its reply: the
				// director's capture missed it leaving (a loaded or
				// emulated machine drops captured packets), it did not die.
				if in == nil || outOK || c.Result == "ok" {
					continue
				}
				lost++
				if sample == "" {
					sample = fmt.Sprintf("%s %s in: %s", d.Label, in.Iface, fmtPacket(*in))
					m = packetMatch{src: rip, dst: v.cip, proto: in.Proto, sport: in.SrcPort, dport: in.DstPort}
				}
			}
		}
		if lost == 0 {
			continue
		}
		pub := v.publicIface()
		wire := []string{sample, fmt.Sprintf("%d test connections' replies from %s arrived on %s %s and did not leave %s toward %s", lost, rip, d.Label, dipIface, pub, cip)}
		rules := droppers(d, m)
		rpDelta, _ := counterDelta(d, "TcpExt.IPReversePathFilter")
		back := routeGet(d, rip.String(), "", "")
		rpf := rpFilter(d, dipIface)
		var f result.Finding
		invalid := invalidDrops(d, m)
		switch {
		case len(invalid) > 0:
			f = conntrackInvalidFinding(v, d, rip, m, wire, invalid)
		case len(rules) > 0:
			f = newFinding("director-firewall-drops-replies", d.Label)
			f.Summary = fmt.Sprintf("a firewall rule on %s drops the replies from %s", d.Label, rip)
			f.Evidence = wire
			for _, r := range rules {
				f.Evidence = append(f.Evidence, fmt.Sprintf("%s — counter +%d during the test", r.Desc, r.Delta))
				f.Remedy = append(f.Remedy, r.Remedy...)
			}
			f.Remedy = append(f.Remedy, fmt.Sprintf("or accept the replies before it: iptables -I FORWARD -s %s -p %s --sport %d -j ACCEPT", rip, m.proto, m.sport))
		case rpf == 1 && back != nil && back.Error == "" && back.Dev != dipIface:
			f = newFinding("director-rpfilter-replies", d.Label)
			f.Summary = fmt.Sprintf("strict rp_filter on %s %s drops the replies from %s: the route back to %s leaves by %s", d.Label, dipIface, rip, rip, back.Dev)
			f.Evidence = append(wire, fmt.Sprintf("effective rp_filter on %s = 1 (max of all and %s)", dipIface, dipIface),
				fmt.Sprintf("ip route get %s → %s", rip, fmtRouteGet(back)))
			if rpDelta > 0 {
				f.Evidence = append(f.Evidence, fmt.Sprintf("TcpExt.IPReversePathFilter rose by %d", rpDelta))
			} else {
				// Without the counter's rise a drop rule without a
				// counter fits the wire just as well.
				f.Alternatives = []result.Alternative{{ID: "director-firewall-drops-replies",
					TellApart: "TcpExt.IPReversePathFilter did not rise during the test; a drop rule without a counter would drop the same packets: add counters to the forward rules, or set rp_filter=2 on " + dipIface + " for one test"}}
			}
			f.Remedy = []string{fmt.Sprintf("ip route replace %s dev %s   # the route back to the real server must use the interface its replies arrive on", rip, dipIface)}
		case len(fwDropPolicies(d, "forward")) > 0:
			c := fwDropPolicies(d, "forward")[0]
			f = newFinding("director-forward-policy-drop", d.Label)
			f.Summary = fmt.Sprintf("the forward chain %s %s has policy drop and no rule accepts the replies from %s", c.Table, c.Chain, rip)
			f.Evidence = append(wire, c.Desc+" (a policy has no counter)")
			if c.Delta >= 0 {
				f.Evidence = append(f.Evidence, fmt.Sprintf("the policy's counter rose by %d during the test", c.Delta))
			}
			switch c.Backend {
			case "iptables-legacy":
				f.Remedy = []string{"iptables-legacy -I FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"}
			case "iptables-nft":
				f.Remedy = []string{"iptables -I FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
					fmt.Sprintf("# or: nft insert rule %s %s %s ct state established,related accept", c.Family, c.Table, c.Chain)}
			default:
				f.Remedy = []string{fmt.Sprintf("nft add rule %s %s %s ct state established,related accept", c.Family, c.Table, c.Chain),
					fmt.Sprintf("nft add rule %s %s %s ip saddr %s %s sport %d accept", c.Family, c.Table, c.Chain, rip, m.proto, m.sport)}
			}
		default:
			if d.Capture.Dropped > 0 {
				// Only the capture's silence says they died, and it
				// lost packets: as for the requests, no evidence.
				continue
			}
			f = newFinding("director-firewall-drops-replies", d.Label)
			f.Summary = fmt.Sprintf("the replies from %s die inside %s; no rule with a counter matched them", rip, d.Label)
			f.Evidence = wire
			f.Alternatives = []result.Alternative{
				{ID: "director-rpfilter-replies", TellApart: fmt.Sprintf("TcpExt.IPReversePathFilter rose by %d; rp_filter on %s is %d; the route back to %s leaves by %s", rpDelta, dipIface, rpf, rip, devOf(back))},
				{ID: "conntrack-invalid-drop", TellApart: "a ct state invalid drop rule would count; add a counter to the director's drop rules (or read iptables-save -c) to see which one matches"},
			}
			f.Remedy = []string{fmt.Sprintf("nft list ruleset; iptables-save -c   # on %s: find what drops %s from %s", d.Label, m.proto, rip)}
		}
		f.Interface = dipIface
		f.Address = firstAddress(v, h)
		out = append(out, f)
	}
	return mergeSameID(out)
}

func devOf(rg *obs.RouteGet) string {
	if rg == nil || rg.Dev == "" {
		return "(not looked up)"
	}
	return rg.Dev
}

func firstAddress(v *view, h *Host) string {
	for _, s := range v.serviceOf(h) {
		if r, ok := v.realServerEntry(s, h); ok {
			return r.AddrPort().String()
		}
	}
	return ""
}

// mergeSameID folds findings of one id on one host (one per real server)
// into one, keeping every real server's evidence: one broken rule is one
// finding, however many real servers it hits.
func mergeSameID(fs []result.Finding) []result.Finding {
	var out []result.Finding
	idx := map[string]int{}
	for _, f := range fs {
		k := f.ID + "|" + f.Host
		if i, ok := idx[k]; ok {
			o := &out[i]
			o.Evidence = appendNew(o.Evidence, f.Evidence...)
			o.Remedy = appendNew(o.Remedy, f.Remedy...)
			if o.Address != f.Address {
				o.Address = ""
			}
			continue
		}
		idx[k] = len(out)
		out = append(out, f)
	}
	return out
}

func appendNew(list []string, items ...string) []string {
	for _, it := range items {
		dup := false
		for _, l := range list {
			if l == it {
				dup = true
				break
			}
		}
		if !dup {
			list = append(list, it)
		}
	}
	return list
}
