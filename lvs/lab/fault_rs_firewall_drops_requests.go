package lab

// rs-firewall-drops-requests (HOWTO Q.4 A.5): the real server's firewall
// drops the requests to its TCP service silently:
//
//	table ip lvsdoctor { chain input { type filter hook input priority filter; policy accept;
//	  ip daddr RIP tcp dport RPORT counter drop } }
//
// Variant iptables writes the rule with the iptables command instead
// (iptables -A INPUT -d RIP -p tcp --dport RPORT -m comment --comment ... -j DROP),
// as an operator would; with iptables-nft it lands in table ip filter,
// which Clear's ruleset flush removes; undo deletes it for the legacy
// backend.

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/google/nftables/expr"
)

const rsDropRequestsID = "rs-firewall-drops-requests"

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: rsDropRequestsID,
			Summary:  "drop the requests to the real server's TCP service in its input filter",
			Variants: []string{"nft", "iptables"}},
		hostKind: "rs",
		inject: func(ctx context.Context, e *env, h *Host, variant string) error {
			rip, port := e.st.rsPort(h.Role, "tcp")
			if port == 0 {
				return fmt.Errorf("%s serves no TCP service", h.Role)
			}
			if variant == "iptables" {
				return e.iptables(h, append([]string{"-A"}, rsDropRequestsArgs(e.st, h)...)...)
			}
			ex := append(matchIPAddr(16, rip), matchPort("tcp", 2, port)...)
			return e.rsFilterRule(h, "input", ex, &expr.Verdict{Kind: expr.VerdictDrop}, rsDropRequestsID)
		},
		undo: func(ctx context.Context, e *env, h *Host, variant string) error {
			if variant != "iptables" {
				return nil
			}
			// Gone already when iptables is iptables-nft (Clear flushes
			// the ruleset); a legacy rule is deleted here.
			_ = e.iptables(h, append([]string{"-D"}, rsDropRequestsArgs(e.st, h)...)...)
			return nil
		},
	})
}

func rsDropRequestsArgs(s *State, h *Host) []string {
	rip, port := s.rsPort(h.Role, "tcp")
	return []string{"INPUT", "-d", rip.String() + "/32", "-p", "tcp", "--dport", strconv.Itoa(port),
		"-m", "comment", "--comment", FaultCommentPrefix + rsDropRequestsID, "-j", "DROP"}
}

// iptables runs the iptables command inside host's namespace.
func (e *env) iptables(h *Host, args ...string) error {
	var out bytes.Buffer
	code, err := Exec(h.Namespace, append([]string{"iptables", "-w", "2"}, args...), nil, &out, &out)
	if err != nil {
		return fmt.Errorf("%s: iptables: %w", h.Role, err)
	}
	if code != 0 {
		return fmt.Errorf("%s: iptables %v: exit %d: %s", h.Role, args, code, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}
