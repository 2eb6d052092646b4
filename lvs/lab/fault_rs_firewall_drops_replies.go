package lab

// rs-firewall-drops-replies (HOWTO Q.4 A.5): the real server's firewall
// drops its own replies:
//
//	table ip lvsdoctor { chain output { type filter hook output priority filter; policy accept;
//	  ip saddr RIP tcp sport RPORT counter drop } }
//
// The request arrives and the listener answers, but nothing leaves.

import (
	"context"
	"fmt"

	"github.com/google/nftables/expr"
)

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: "rs-firewall-drops-replies", Summary: "drop the real server's TCP replies in its output filter"},
		hostKind:  "rs",
		inject: func(ctx context.Context, e *env, h *Host, _ string) error {
			rip, port := e.st.rsPort(h.Role, "tcp")
			if port == 0 {
				return fmt.Errorf("%s serves no TCP service", h.Role)
			}
			ex := append(matchIPAddr(12, rip), matchPort("tcp", 0, port)...)
			return e.rsFilterRule(h, "output", ex, &expr.Verdict{Kind: expr.VerdictDrop}, "rs-firewall-drops-replies")
		},
	})
}
