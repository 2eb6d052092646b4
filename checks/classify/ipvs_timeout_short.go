package classify

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
)

func init() { addRule(ruleIPVSTimeoutShort) }

// IPVS forgets an idle TCP connection after its tcp timeout (900 s by
// default), while the hosts send their first keepalive after
// net.ipv4.tcp_keepalive_time (7200 s by default): an idle connection
// with keepalives (database pools, message queues) outlives the
// director's entry, and its next packet is answered with a RST by the
// director's own stack. Info, not warning: short connections never meet
// it, and the defaults of every IPVS director have it; the application's
// own keepalive can be shorter than the sysctl, which cannot be read.
func ruleIPVSTimeoutShort(v *view) []result.Finding {
	_, t := v.ipvsTable()
	if t == nil || t.Timeouts == nil || t.Timeouts.TCP == 0 {
		return nil
	}
	tcp := false
	for _, s := range t.Services {
		tcp = tcp || s.Proto == "tcp" || s.Proto == "fwmark"
	}
	if !tcp {
		return nil
	}
	var longer []string
	for _, h := range append([]*Host{v.client}, v.rs...) {
		if !h.Reached() || h.Facts().Sysctls == nil {
			continue
		}
		ka, err := strconv.Atoi(h.Facts().Sysctls["net.ipv4.tcp_keepalive_time"])
		if err == nil && uint32(ka) > t.Timeouts.TCP {
			longer = append(longer, fmt.Sprintf("%s: net.ipv4.tcp_keepalive_time = %d", h.Label, ka))
		}
	}
	if len(longer) == 0 {
		return nil
	}
	sort.Strings(longer)
	f := newFinding("ipvs-timeout-short", v.director.Label)
	f.Summary = fmt.Sprintf("%s forgets an idle TCP connection after %d s, before the first keepalive of the hosts: long idle connections are reset", v.director.Label, t.Timeouts.TCP)
	f.Evidence = append([]string{fmt.Sprintf("ipvsadm -L --timeout: tcp %d tcpfin %d udp %d", t.Timeouts.TCP, t.Timeouts.TCPFin, t.Timeouts.UDP)}, longer...)
	f.Remedy = []string{
		fmt.Sprintf("ipvsadm --set %d %d %d   # on %s: a tcp timeout above the keepalive time", 7200+60, t.Timeouts.TCPFin, t.Timeouts.UDP, v.director.Label),
		"# or shorter keepalives where connections idle: sysctl -w net.ipv4.tcp_keepalive_time=600 (" + strings.Join(hostsOf(longer), ", ") + ")",
	}
	return []result.Finding{f}
}

func hostsOf(lines []string) []string {
	var out []string
	for _, l := range lines {
		h, _, _ := strings.Cut(l, ":")
		out = append(out, h)
	}
	return out
}
