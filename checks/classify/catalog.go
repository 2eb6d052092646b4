package classify

import (
	"sort"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
)

// Fault is one entry of FAULTS.md: the id findings carry, the HOWTO answer
// it belongs to and its severity.
type Fault struct {
	ID       string
	Howto    string
	Severity result.Severity
	Title    string
}

// Catalog is FAULTS.md's table, in its order. Findings take their HOWTO
// answer and severity from here, so the catalogue is stated once.
var Catalog = []Fault{
	{"director-no-masquerade", "Q.1 A.2, Q.2 A.2", result.SevError, "no masquerading for traffic the real servers start"},
	{"director-no-forwarding", "Q.3 A.4", result.SevError, "net.ipv4.ip_forward=0 on the director"},
	{"director-rpfilter-requests", "Q.3 A.4", result.SevError, "strict rp_filter drops the client's requests on the director"},
	{"director-firewall-drops-requests", "Q.3 A.4", result.SevError, "a firewall rule on the director drops the client's packets"},
	{"director-forward-policy-drop", "Q.3 A.2/A.4", result.SevError, "FORWARD policy drop without an accept for the service"},
	{"director-rpfilter-replies", "Q.3 A.2", result.SevError, "strict rp_filter drops the real server's replies on the director"},
	{"director-firewall-drops-replies", "Q.3 A.2", result.SevError, "a firewall rule on the director drops the replies"},
	{"conntrack-invalid-drop", "Q.3 A.2", result.SevError, "a stateful rule drops packets conntrack marks INVALID"},
	{"replies-not-translated", "Q.3 A.3", result.SevError, "replies leave the director with a source that is not the VIP"},
	{"icmp-redirect-bypass", "Q.2, Q.3 same media", result.SevError, "ICMP redirects send the real server's replies straight to the client"},
	{"vip-not-on-director", "Q.3 A.4", result.SevError, "the VIP is not local on the director"},
	{"service-missing", "Q.3 A.5", result.SevError, "the virtual service is missing or has no real server with weight > 0"},
	{"fwmark-not-marked", "Q.3 A.5", result.SevError, "a firewall-mark service whose marking rule does not match"},
	{"client-on-director", "Q.3 A.5", result.SevWarning, "the client runs on the director itself"},
	{"director-ftp-helper-missing", "FTP notes", result.SevError, "FTP in NAT mode without the FTP helper"},
	{"rs-no-listener", "Q.4 A.2", result.SevError, "nothing listens on RIP:RPORT"},
	{"rs-firewall-reject", "Q.4 A.3", result.SevError, "the real server's firewall rejects with ICMP"},
	{"rs-rip-missing", "Q.4 A.4", result.SevError, "the RIP is not configured on the real server"},
	{"rs-rpfilter", "Q.4 A.5", result.SevError, "strict rp_filter on the real server drops the requests"},
	{"rs-firewall-drops-requests", "Q.4 A.5", result.SevError, "the real server's firewall drops the requests"},
	{"rs-firewall-drops-replies", "Q.4 A.5", result.SevError, "the real server's firewall drops its own replies"},
	{"rs-wrong-gateway", "Q.4 A.6, Q.2", result.SevError, "the real server's replies do not go back through the director"},
	{"rs-direct-route-to-client", "Q.4 A.6", result.SevError, "a more specific route sends replies past the director"},
	{"rs-weight-zero", "", result.SevWarning, "a real server has weight 0"},
	{"persistence-needed", "", result.SevWarning, "FTP or another multi-connection service in DR/TUN without persistence"},
	{"link-down", "", result.SevError, "an interface on the path is down or has no carrier"},
	{"ipsec-ah-over-nat", "", result.SevError, "IPSec AH through NAT forwarding"},
	// Static findings from the director's IPVS table and kernel (issue #6);
	// not yet in ../shared/FAULTS.md, which we cannot write: the README's
	// fault table lists them.
	{"config-differs", "", result.SevWarning, "the director's IPVS table differs from the configuration"},
	{"forward-not-masq", "Q.3 A.5", result.SevError, "a real server of a NAT service is forwarded by DR or TUN"},
	{"ipvs-sysctl-risk", "", result.SevWarning, "an IPVS sysctl that breaks connections in this setup"},
	{"ipvs-timeout-short", "", result.SevInfo, "IPVS forgets idle TCP connections before keepalives come"},
	{"ipvs-conn-table-small", "", result.SevWarning, "the IPVS connection hash table is small for the connection count"},
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

// rule judges one fault (or one family of look-alike faults) from the
// view. Rules are independent: two faults at once give two findings. Each
// rule's file registers it, so a fault's rule reads in one place.
type rule func(v *view) []result.Finding

var rules []rule

func addRule(r rule) { rules = append(rules, r) }

// sortFindings orders findings most severe first, then by id and host, so
// the same observations always print the same way.
func sortFindings(fs []result.Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if sevRank(a.Severity) != sevRank(b.Severity) {
			return sevRank(a.Severity) < sevRank(b.Severity)
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Host < b.Host
	})
}
