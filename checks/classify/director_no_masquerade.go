package classify

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
)

func init() { addRule(ruleDirectorNoMasquerade) }

// Traffic that a real server starts (Q.1 ping, Q.2 traceroute) is not an
// LVS connection: only a masquerade/SNAT rule on the director gives it a
// public source. Without one, the echo request leaves the public side with
// the private RIP and nothing comes back, while LVS connections may work.
func ruleDirectorNoMasquerade(v *view) []result.Finding {
	d := v.director
	if !d.Reached() || !v.cip.IsValid() {
		return nil
	}
	f := d.Facts()
	var failed []*Host
	for _, h := range v.rs {
		if h.Ping == nil || h.Ping.Received > 0 || !v.rip(h).IsValid() {
			continue
		}
		if masqueradeFor(f, v.rip(h)) != "" {
			continue
		}
		failed = append(failed, h)
	}
	if len(failed) == 0 {
		return nil
	}
	fd := newFinding("director-no-masquerade", d.Label)
	pub := v.publicIface()
	fd.Interface = pub
	var names []string
	nets := map[string]bool{}
	var netList []string
	for _, h := range failed {
		rip := v.rip(h)
		names = append(names, h.Label)
		fd.Evidence = append(fd.Evidence, fmt.Sprintf("%s: ping -I %s %s: %d/%d replies", h.Label, rip, v.cip, h.Ping.Received, h.Ping.Sent))
		if p := v.untranslatedEcho(rip); p != "" {
			fd.Evidence = append(fd.Evidence, p)
		}
		_, pfx := ifaceFacing(d, rip)
		n := rip.String() + "/32"
		if pfx.IsValid() {
			n = pfx.Masked().String()
		}
		if !nets[n] {
			nets[n] = true
			netList = append(netList, n)
		}
	}
	fd.Summary = fmt.Sprintf("no masquerade or SNAT rule on %s covers %s: traffic that %s start leaves with a private source and gets no answer",
		d.Label, strings.Join(netList, ", "), strings.Join(names, ", "))
	nRules := 0
	for _, r := range f.NftRules {
		if r.NAT != "" {
			nRules++
		}
	}
	fd.Evidence = append(fd.Evidence, fmt.Sprintf("read %d nftables NAT rules and the iptables nat table: none masquerades %s", nRules, strings.Join(netList, ", ")))
	for _, n := range netList {
		oif := ""
		if pub != "" {
			oif = " -o " + pub
		}
		fd.Remedy = append(fd.Remedy, fmt.Sprintf("iptables -t nat -A POSTROUTING -s %s%s -j MASQUERADE", n, oif))
		noif := ""
		if pub != "" {
			noif = fmt.Sprintf(" oifname %q", pub)
		}
		fd.Remedy = append(fd.Remedy,
			"nft add table ip nat",
			"nft 'add chain ip nat postrouting { type nat hook postrouting priority srcnat; }'",
			fmt.Sprintf("nft add rule ip nat postrouting ip saddr %s%s masquerade   # nft form", n, noif))
	}
	return []result.Finding{fd}
}

// publicIface is the director interface toward the client.
func (v *view) publicIface() string {
	if ing := v.ingress(); ing != "" {
		return ing
	}
	if rg := routeGet(v.director, v.cip.String(), "", ""); rg != nil && rg.Error == "" {
		return rg.Dev
	}
	return ""
}

// untranslatedEcho describes an echo request from rip seen leaving the
// director toward the client without translation.
func (v *view) untranslatedEcho(rip netip.Addr) string {
	d := v.director
	if d.Capture == nil {
		return ""
	}
	for _, p := range d.Capture.Packets {
		if p.Dir == "out" && p.Proto == "icmp" && p.ICMPType == 8 && p.Src == rip.String() && p.Dst == v.cip.String() {
			return fmt.Sprintf("%s %s out: %s, source not translated", d.Label, p.Iface, fmtPacket(p))
		}
	}
	return ""
}
