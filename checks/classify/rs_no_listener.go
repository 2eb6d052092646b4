package classify

import (
	"fmt"
	"net/netip"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

func init() { addRule(ruleRSNoListener) }

// Nothing listens on RIP:RPORT (HOWTO Q.4 A.2). The socket table decides;
// the RST leaving the real server (TCP) or the ICMP port unreachable (UDP)
// is the evidence on the wire.
func ruleRSNoListener(v *view) []result.Finding {
	var out []result.Finding
	for _, h := range v.rs {
		f := h.Facts()
		if !h.Reached() || f.Listeners == nil {
			continue
		}
		for _, s := range v.serviceOf(h) {
			if s.Proto != "tcp" && s.Proto != "udp" {
				continue
			}
			r, _ := v.realServerEntry(s, h)
			ap := r.AddrPort()
			if listening(f.Listeners, s.Proto, ap) {
				continue
			}
			fd := newFinding("rs-no-listener", h.Label)
			fd.Address = ap.String()
			fd.Service = s.String()
			fd.Summary = fmt.Sprintf("nothing listens on %s %s on %s", s.Proto, ap, h.Label)
			fd.Evidence = append(fd.Evidence, fmt.Sprintf("%s: no %s socket listens on %s or on 0.0.0.0:%d (ss -%sln)", h.Label, s.Proto, ap, ap.Port(), s.Proto[:1]))
			if ev := refusals(v, h, s.Proto, ap); ev != "" {
				fd.Evidence = append(fd.Evidence, ev)
			}
			fd.Remedy = []string{
				fmt.Sprintf("start the service on %s (%s port %d), or point the director at the port it listens on:", h.Label, s.Proto, ap.Port()),
				fmt.Sprintf("ipvsadm -e -%s %s -r %s -m", map[string]string{"tcp": "t", "udp": "u"}[s.Proto], s.VIP, ap),
			}
			out = append(out, fd)
		}
	}
	return out
}

func listening(ls []obs.Listener, proto string, ap netip.AddrPort) bool {
	for _, l := range ls {
		if l.Proto != proto {
			continue
		}
		la, err := netip.ParseAddrPort(l.Addr)
		if err != nil || la.Port() != ap.Port() {
			continue
		}
		if la.Addr() == ap.Addr() || la.Addr().IsUnspecified() {
			return true
		}
	}
	return false
}

// refusals describes what the real server sent back to refuse the test
// connections: RSTs for TCP, ICMP port unreachable for UDP.
func refusals(v *view, h *Host, proto string, ap netip.AddrPort) string {
	if h.Capture == nil {
		return ""
	}
	n := 0
	var first obs.Packet
	for _, p := range h.Capture.Packets {
		if p.Dir != "out" {
			continue
		}
		rst := proto == "tcp" && p.Proto == "tcp" && p.Src == ap.Addr().String() && p.SrcPort == int(ap.Port()) && (p.Flags == "R" || p.Flags == "R.")
		unreach := proto == "udp" && p.Proto == "icmp" && p.ICMPType == 3 && p.ICMPCode == 3 && p.Inner != nil && p.Inner.Dst == ap.Addr().String() && p.Inner.DstPort == int(ap.Port())
		if rst || unreach {
			if n == 0 {
				first = p
			}
			n++
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%s %s out: %d refusals of test connections, e.g. %s", h.Label, first.Iface, n, fmtPacket(first))
}
