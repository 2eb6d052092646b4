package classify

import (
	"fmt"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
)

func init() { addRule(ruleDirectorNoForwarding) }

// ip_forward=0 on the director (HOWTO Q.3 A.4). The sysctl decides; the
// capture shows where the packets die, which depends on the datapath:
// conntrack NAT loses the request, IPVS transmits the request itself and
// loses the reply.
func ruleDirectorNoForwarding(v *view) []result.Finding {
	d := v.director
	if !d.Reached() || sysctl(d, "net.ipv4.ip_forward") != "0" {
		return nil
	}
	f := newFinding("director-no-forwarding", d.Label)
	f.Summary = "the director does not forward packets: net.ipv4.ip_forward = 0"
	f.Evidence = append(f.Evidence, "sysctl net.ipv4.ip_forward = 0 on "+d.Label)
	ing := v.ingress()
	f.Interface = ing
	in, out, back := v.directorFlowCounts()
	if in > 0 {
		f.Evidence = append(f.Evidence, fmt.Sprintf("%d test packets from the client arrived on %s; %d left toward a real server; %d replies left toward the client", in, ing, out, back))
	}
	if n, ok := counterDelta(d, "Ip.InAddrErrors"); ok && n > 0 {
		f.Evidence = append(f.Evidence, fmt.Sprintf("Ip.InAddrErrors rose by %d during the test (packets not for this host, not forwarded)", n))
	}
	f.Remedy = []string{
		"sysctl -w net.ipv4.ip_forward=1",
		"echo 'net.ipv4.ip_forward = 1' > /etc/sysctl.d/90-lvs.conf   # keep it after a reboot",
	}
	return []result.Finding{f}
}

// directorFlowCounts counts, over all test connections, request packets
// that arrived from the client, request packets that left toward a real
// server, and replies that left toward the client.
func (v *view) directorFlowCounts() (in, out, back int) {
	d := v.director
	if d == nil || d.Capture == nil {
		return
	}
	cip := v.cip.String()
	for _, sr := range v.in.Services {
		vip := sr.Service.VIPPort().Addr().String()
		for _, c := range sr.Conns {
			for _, p := range flowPackets(d, c) {
				switch {
				case p.Dir == "in" && p.Src == cip && p.Dst == vip:
					in++
				case p.Dir == "out" && p.Src == cip && p.Dst != vip:
					out++
				case p.Dir == "out" && p.Dst == cip && p.Src == vip:
					back++
				}
			}
		}
	}
	return
}
