package classify

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

func init() { addRule(ruleDirectorDropsRequests) }

// The client's requests reach the director and die there (HOWTO Q.3 A.4):
// they arrive on the ingress interface, nothing leaves toward a real
// server and nothing answers from the VIP. Forwarding off, strict
// rp_filter and a service missing from the table are other rules' faults;
// here the firewall decides: a drop/reject rule whose counter rose (nft,
// iptables with the nft backend, iptables-legacy), else a chain policy
// drop on the path with no rule accepting the new connection.
func ruleDirectorDropsRequests(v *view) []result.Finding {
	d := v.director
	if !d.Reached() || d.Capture == nil || !v.cip.IsValid() || sysctl(d, "net.ipv4.ip_forward") == "0" {
		return nil
	}
	ing := v.ingress()
	if ing != "" && rpFilter(d, ing) == 1 {
		if back := routeGet(d, v.cip.String(), "", ""); back != nil && back.Error == "" && back.Dev != "" && back.Dev != ing {
			return nil // director-rpfilter-requests
		}
	}
	f := d.Facts()
	cip := v.cip.String()
	var out []result.Finding
	for _, sr := range v.in.Services {
		s := sr.Service
		if s.Proto != "tcp" && s.Proto != "udp" {
			continue
		}
		if e := v.serviceTable(s); e.known && (!e.found || e.leave) {
			continue // service-missing
		}
		vp := s.VIPPort()
		died := 0
		var sample *obs.Packet
		for _, c := range sr.Conns {
			if c.Result == "ok" {
				continue
			}
			ans, _, fwd := localAnswer(d, c, vp, cip)
			if fwd || ans != "" {
				continue
			}
			for _, p := range flowPackets(d, c) {
				if p.Dir == "in" && p.Src == cip && p.Dst == vp.Addr().String() && p.DstPort == int(vp.Port()) && p.Proto == s.Proto {
					if sample == nil {
						sample = p
					}
					died++
					break
				}
			}
		}
		if died == 0 {
			continue
		}
		ms := []packetMatch{{src: v.cip, dst: vp.Addr(), proto: s.Proto, sport: sample.SrcPort, dport: int(vp.Port())}}
		var dsts []string
		rport := int(vp.Port())
		for _, r := range s.RealServers {
			ap := r.AddrPort()
			ms = append(ms, packetMatch{src: v.cip, dst: ap.Addr(), proto: s.Proto, sport: sample.SrcPort, dport: int(ap.Port())})
			dsts = append(dsts, ap.Addr().String())
			rport = int(ap.Port())
		}
		wire := []string{
			fmt.Sprintf("%s %s in: %s", d.Label, sample.Iface, fmtPacket(*sample)),
			fmt.Sprintf("%d of %d test connections to %s arrived on %s %s; nothing left toward a real server and nothing answered", died, len(sr.Conns), s, d.Label, sample.Iface),
		}
		hooks := []string{"forward"}
		if f.Datapath == "ipvs" {
			hooks = []string{"input", "forward"} // IPVS: requests to the local VIP pass INPUT
		}
		drops := fwDroppers(d, ms)
		var pols []fwPolicy
		for _, hk := range hooks {
			for _, p := range fwDropPolicies(d, hk) {
				if acceptsIn(d, p, ms) == "" {
					pols = append(pols, p)
				}
			}
		}
		var fd result.Finding
		switch {
		case len(drops) > 0:
			fd = newFinding("director-firewall-drops-requests", d.Label)
			fd.Summary = fmt.Sprintf("a firewall rule on %s drops the client's requests to %s", d.Label, s)
			fd.Evidence = wire
			for _, r := range drops {
				fd.Evidence = append(fd.Evidence, fmt.Sprintf("%s — counter +%d during the test", r.Desc, r.Delta))
				fd.Remedy = append(fd.Remedy, r.Remedy...)
			}
			chain := drops[0].Chain
			fd.Remedy = append(fd.Remedy,
				fmt.Sprintf("# or accept the service before it: iptables -I %s -d %s -p %s --dport %d -j ACCEPT", chain, strings.Join(dsts, ","), s.Proto, rport),
				fmt.Sprintf("# nft form: nft insert rule FAMILY TABLE %s ip daddr { %s } %s dport %d accept", chain, strings.Join(dsts, ", "), s.Proto, rport))
		case len(pols) > 0:
			p := pols[0]
			fd = newFinding("director-forward-policy-drop", d.Label)
			fd.Summary = fmt.Sprintf("the %s chain on %s has policy drop and no rule accepts new connections to %s", hookOf(p), d.Label, s)
			fd.Evidence = append(wire, p.Desc)
			if p.Delta >= 0 {
				fd.Evidence = append(fd.Evidence, fmt.Sprintf("the policy's counter rose by %d during the test", p.Delta))
			} else {
				fd.Evidence = append(fd.Evidence, "a chain policy has no counter: the evidence is the request entering and not leaving, with no accept rule matching it and no drop rule counting it")
			}
			for _, r := range chainRules(d, p) {
				fd.Evidence = append(fd.Evidence, "  accepts only: "+r)
			}
			fd.Remedy = policyRemedy(p, s.Proto, dsts, rport)
		default:
			if linkDownOn(d) {
				continue
			}
			if d.Capture.Dropped > 0 {
				// Nothing names a drop, and the evidence is only what
				// the capture did not see: on a director whose capture
				// lost packets (a slow host), that is no evidence. What
				// stays unexplained is reported as not checked.
				continue
			}
			fd = newFinding("director-firewall-drops-requests", d.Label)
			fd.Summary = fmt.Sprintf("the client's requests to %s die inside %s; no rule with a counter matched them", s, d.Label)
			fd.Evidence = wire
			fd.Alternatives = []result.Alternative{
				{ID: "director-forward-policy-drop", TellApart: "no chain on the path has policy drop in the rules read; a policy has no counter"},
				{ID: "director-rpfilter-requests", TellApart: fmt.Sprintf("effective rp_filter on %s is %d; TcpExt.IPReversePathFilter rises when it drops", ing, rpFilter(d, ing))},
			}
			fd.Remedy = []string{fmt.Sprintf("nft list ruleset; iptables-save -c; iptables-legacy-save -c   # on %s: find what drops %s to %s", d.Label, s.Proto, vp)}
		}
		fd.Interface = sample.Iface
		fd.Service = s.String()
		out = append(out, fd)
	}
	return mergeSameID(out)
}

func hookOf(p fwPolicy) string {
	if p.Backend != "nft" {
		return p.Chain
	}
	return p.Family + " " + p.Table + " " + p.Chain
}

// chainRules lists the rules of the policy's chain (nft form).
func chainRules(h *Host, p fwPolicy) []string {
	f := h.Facts()
	var out []string
	if f == nil || p.Backend == "iptables-legacy" {
		return nil
	}
	for _, r := range f.NftRules {
		if r.Family == p.Family && r.Table == p.Table && r.Chain == p.Chain {
			out = append(out, r.Text)
		}
	}
	return out
}

// linkDownOn says an interface of the host (loopback aside) is down or has
// no carrier: packets dying there are link-down's.
func linkDownOn(h *Host) bool {
	f := h.Facts()
	if f == nil {
		return false
	}
	for _, l := range f.Links {
		if l.Name != "lo" && (!l.Up || !l.Carrier) {
			return true
		}
	}
	return false
}

// ipOf parses an address ("" gives the zero Addr).
func ipOf(s string) netip.Addr {
	a, _ := netip.ParseAddr(s)
	return a
}
