package classify

import "github.com/lvsdoctor/lvsdoctor/checks/result"

// Fault is one entry of FAULTS.md: the id findings carry, the HOWTO answer
// it belongs to and its severity.
type Fault struct {
	ID       string
	Howto    string
	Severity result.Severity
	Title    string
}

// Catalog lists the faults this version can name, in FAULTS.md order.
var Catalog = []Fault{
	{"director-no-masquerade", "Q.1 A.2, Q.2 A.2", result.SevError, "no masquerading for traffic the real servers start"},
	{"director-no-forwarding", "Q.3 A.4", result.SevError, "net.ipv4.ip_forward=0 on the director"},
	{"director-rpfilter-requests", "Q.3 A.4", result.SevError, "strict rp_filter drops the client's requests on the director"},
	{"director-forward-policy-drop", "Q.3 A.2/A.4", result.SevError, "FORWARD policy drop without an accept for the service"},
	{"director-rpfilter-replies", "Q.3 A.2", result.SevError, "strict rp_filter drops the real server's replies on the director"},
	{"director-firewall-drops-replies", "Q.3 A.2", result.SevError, "a firewall rule on the director drops the replies"},
	{"rs-no-listener", "Q.4 A.2", result.SevError, "nothing listens on RIP:RPORT"},
	{"rs-wrong-gateway", "Q.4 A.6, Q.2", result.SevError, "the real server's replies do not go back through the director"},
	{"rs-direct-route-to-client", "Q.4 A.6", result.SevError, "a more specific route sends replies past the director"},
}

func lookup(id string) Fault {
	for _, f := range Catalog {
		if f.ID == id {
			return f
		}
	}
	return Fault{ID: id, Severity: result.SevError}
}

func newFinding(id, host string) result.Finding {
	f := lookup(id)
	return result.Finding{ID: id, Howto: f.Howto, Severity: f.Severity, Host: host}
}
