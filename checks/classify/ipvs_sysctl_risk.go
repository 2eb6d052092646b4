package classify

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

func init() { addRule(ruleIPVSSysctlRisk) }

// IPVS sysctls that break connections in this director's setup (warning,
// from the static picture; each names the sysctl, its value and what in
// the setup makes it bite):
//
//   - net.ipv4.vs.conntrack=0 while the director's filter rules match on
//     conntrack state: IPVS traffic is then untracked, and a rule that
//     accepts only established connections, or a policy drop behind it,
//     drops it (the kernel's ipvs-sysctl documentation says to set it
//     when IPVS traffic meets stateful rules).
//   - conn_reuse_mode=1 with vs.conntrack=1 before Linux 5.9: a SYN that
//     reuses the port of a connection in TIME_WAIT is dropped and the
//     client waits a second for its retransmission (the kube-proxy IPVS
//     delays; fixed by "ipvs: allow connection reuse for unconfirmed
//     conntrack" in 5.9).
//   - expire_nodest_conn=0 where keepalived removes a failed real server
//     (no inhibit_on_failure): the established connections to it keep
//     their entry and hang until the IPVS timeout instead of being reset.
func ruleIPVSSysctlRisk(v *view) []result.Finding {
	f, t := v.ipvsTable()
	if t == nil || f.Sysctls == nil {
		return nil
	}
	d := v.director
	var out []result.Finding
	add := func(summary string, evidence, remedy []string) {
		fd := newFinding("ipvs-sysctl-risk", d.Label)
		fd.Summary, fd.Evidence, fd.Remedy = summary, evidence, remedy
		out = append(out, fd)
	}
	ct := f.Sysctls["net.ipv4.vs.conntrack"]
	if ct == "0" {
		if rules := statefulRules(f); len(rules) > 0 {
			add(fmt.Sprintf("net.ipv4.vs.conntrack=0 on %s while its filter rules match on conntrack state: IPVS connections are untracked and such rules do not see them as established", d.Label),
				append([]string{"net.ipv4.vs.conntrack = 0"}, rules...),
				[]string{"sysctl -w net.ipv4.vs.conntrack=1   # on " + d.Label + "; persist it in /etc/sysctl.d"})
		}
	}
	if ct == "1" && f.Sysctls["net.ipv4.vs.conn_reuse_mode"] == "1" && kernelBefore(f.Kernel, 5, 9) {
		add(fmt.Sprintf("conn_reuse_mode=1 with vs.conntrack=1 on Linux %s: a client that reuses a source port waits 1 s for its SYN to be retransmitted", f.Kernel),
			[]string{"net.ipv4.vs.conn_reuse_mode = 1", "net.ipv4.vs.conntrack = 1", "kernel " + f.Kernel + " (the fix is in 5.9)"},
			[]string{"# upgrade the director's kernel to 5.9 or later, or, if no stateful rule needs IPVS traffic tracked:",
				"sysctl -w net.ipv4.vs.conntrack=0   # on " + d.Label})
	}
	if src := v.in.Topology.Source; src != nil && len(src.RemovedOnFailure) > 0 && f.Sysctls["net.ipv4.vs.expire_nodest_conn"] == "0" {
		add(fmt.Sprintf("expire_nodest_conn=0 on %s and %s removes failed real servers: their open connections hang until the IPVS timeout instead of being reset", d.Label, src.File),
			[]string{"net.ipv4.vs.expire_nodest_conn = 0",
				fmt.Sprintf("%s: real servers without inhibit_on_failure: %s", src.File, strings.Join(src.RemovedOnFailure, ", "))},
			[]string{"sysctl -w net.ipv4.vs.expire_nodest_conn=1   # on " + d.Label,
				"# or inhibit_on_failure in the real_server blocks: weight 0 keeps the open connections"})
	}
	return out
}

// statefulRules are the director's filter rules that match on conntrack
// state, as evidence lines.
func statefulRules(f *obs.Facts) []string {
	var out []string
	for _, r := range f.NftRules {
		if r.CtState == "" {
			continue
		}
		if hook, typ := chainHook(f, r); typ == "filter" && (hook == "forward" || hook == "input" || hook == "output") {
			out = append(out, fmt.Sprintf("nft %s %s %s handle %d: %s", r.Family, r.Table, r.Chain, r.Handle, r.Text))
		}
	}
	for _, l := range strings.Split(f.IptablesSave, "\n") {
		if strings.Contains(l, "--ctstate") || strings.Contains(l, "--state") {
			out = append(out, "iptables-save: "+strings.TrimSpace(l))
		}
	}
	return out
}

// kernelBefore says the release ("5.4.0-150-generic") is older than
// major.minor; false when it cannot be read.
func kernelBefore(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return false
	}
	return ma < major || (ma == major && mi < minor)
}
