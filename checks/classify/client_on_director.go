package classify

import (
	"fmt"
	"net/netip"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
)

func init() { addRule(ruleClientOnDirector) }

// The client runs on the director itself (HOWTO Q.3 A.5): not a valid
// test. The director's own connections to the VIP leave through OUTPUT and
// never take the path real clients take (in through the public interface,
// forwarded); current IPVS schedules them anyway, so they may even work.
// Static, from the director's addresses before any traffic: the client's
// address is one of them.
func ruleClientOnDirector(v *view) []result.Finding {
	link, pfx := v.clientOnDirector()
	if link == "" {
		return nil
	}
	d := v.director
	f := newFinding("client-on-director", d.Label)
	f.Interface = link
	f.Summary = fmt.Sprintf("the client %s is the director itself: its test connections do not take the path real clients take, so Q.3 and Q.4 say little", v.cip)
	f.Evidence = []string{
		fmt.Sprintf("%s has %s on %s: the client's address is local there", d.Label, pfx, link),
		"connections from the director to its own VIP leave through OUTPUT, never arrive on the public interface and are never forwarded",
	}
	if v.client != nil && v.client.Spec == d.Spec {
		f.Evidence = append(f.Evidence, fmt.Sprintf("the topology reaches client and director the same way (%s)", d.Spec))
	}
	f.Remedy = []string{"run the test client on another host on the clients' side (topology: client.host and client.address), as a real client would connect"}
	return []result.Finding{f}
}

// clientOnDirector says the client's address is one of the director's
// (the interface and the address as the director has it), from the
// director's static picture.
func (v *view) clientOnDirector() (string, string) {
	d := v.director
	if !d.Reached() || !v.cip.IsValid() {
		return "", ""
	}
	for _, a := range prefixes(d) {
		if p, err := netip.ParsePrefix(a.Prefix); err == nil && p.Addr() == v.cip {
			return a.Link, a.Prefix
		}
	}
	return "", ""
}
