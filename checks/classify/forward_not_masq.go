package classify

import (
	"fmt"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

func init() { addRule(ruleForwardNotMasq) }

// A real server of a NAT service is forwarded by direct routing or
// tunnelling (ipvsadm -g/-i, keepalived lb_kind DR/TUN). The request then
// reaches the real server with the VIP as its destination, unchanged:
// without the VIP on the real server it is dropped, and with it the reply
// leaves from the VIP past the director's NAT. The table read decides;
// the test connections that reached nothing are the evidence. A topology
// that says route or tunnel itself means a DR/TUN cluster, which is not
// this fault.
func ruleForwardNotMasq(v *view) []result.Finding {
	_, t := v.ipvsTable()
	if t == nil {
		return nil
	}
	var out []result.Finding
	for _, sr := range v.in.Services {
		s := sr.Service
		is := ipvsService(t, s)
		if is == nil {
			continue
		}
		for _, r := range s.RealServers {
			if r.Forward != "" && r.Forward != "masq" {
				continue
			}
			var dst *obs.IPVSDest
			for i := range is.Dests {
				if sameAddrPort(is.Dests[i].Addr, r.AddrPort().String()) {
					dst = &is.Dests[i]
				}
			}
			if dst == nil || dst.Forward == "" || dst.Forward == "masq" {
				continue
			}
			f := newFinding("forward-not-masq", r.Label())
			f.Service = s.String()
			f.Address = r.AddrPort().String()
			how := map[string]string{"route": "direct routing (DR, -g)", "tunnel": "IP-in-IP tunnelling (TUN, -i)"}[dst.Forward]
			if how == "" {
				how = dst.Forward
			}
			f.Summary = fmt.Sprintf("%s forwards %s to %s by %s, not by NAT: the request reaches it still addressed to the VIP", v.director.Label, s, r.AddrPort(), how)
			f.Evidence = []string{ipvsadmLine(*is)}
			hit := 0
			for _, c := range sr.Conns {
				if h := v.rsOf(c); h != nil && h.Label == r.Label() && c.Result != "ok" {
					hit++
				}
			}
			if hit > 0 {
				f.Evidence = append(f.Evidence, fmt.Sprintf("%d test connections sent to %s got no answer", hit, r.Label()))
			}
			f.Remedy = []string{fmt.Sprintf("ipvsadm -e %s -r %s -m -w %d   # on %s", ipvsadmService(is.Proto, is.Addr, is.Mark), r.AddrPort(), max(dst.Weight, 1), v.director.Label),
				"# keepalived: lb_kind NAT in the virtual_server block (or the real_server's)"}
			out = append(out, f)
		}
	}
	return out
}
