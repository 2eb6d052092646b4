package lab

// rs-firewall-reject (HOWTO Q.4 A.3): the real server's firewall rejects
// the requests to its TCP service with ICMP:
//
//	table ip lvsdoctor { chain input { type filter hook input priority filter; policy accept;
//	  ip daddr RIP tcp dport RPORT counter reject with icmp type port-unreachable } }
//
// (variant admin-prohibited: icmp type admin-prohibited, code 13). The
// director rewrites the ICMP to come from the VIP, inner header too; the
// client gets ECONNREFUSED or EHOSTUNREACH.

import (
	"context"
	"fmt"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: "rs-firewall-reject",
			Summary:  "reject the real server's TCP requests with ICMP in its input filter",
			Variants: []string{"port-unreachable", "admin-prohibited"}},
		hostKind: "rs",
		inject: func(ctx context.Context, e *env, h *Host, variant string) error {
			rip, port := e.st.rsPort(h.Role, "tcp")
			if port == 0 {
				return fmt.Errorf("%s serves no TCP service", h.Role)
			}
			code := uint8(3) // ICMP_PORT_UNREACH
			if variant == "admin-prohibited" {
				code = 13 // ICMP_PKT_FILTERED: communication administratively prohibited
			}
			ex := append(matchIPAddr(16, rip), matchPort("tcp", 2, port)...)
			return e.rsFilterRule(h, "input", ex, &expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: code}, "rs-firewall-reject")
		},
	})
}
