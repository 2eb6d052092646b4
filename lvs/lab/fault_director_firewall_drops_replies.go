package lab

// director-firewall-drops-replies (HOWTO Q.3 A.2): a rule in the
// director's forward filter drops the real servers' replies:
//
//	ip saddr RIPNET tcp sport RPORT counter drop
//
// Under conntrack DNAT the replies pass FORWARD still carrying the RIP as
// source, so the SYN+ACK arrives on eth1 and never leaves eth0.

import (
	"context"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// FirewallDropsRepliesComment is the fault rule's comment.
const FirewallDropsRepliesComment = FaultCommentPrefix + "director-firewall-drops-replies"

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: "director-firewall-drops-replies", Summary: "drop the real servers' TCP replies in the director's forward filter"},
		hostKind:  RoleDirector,
		inject: func(ctx context.Context, e *env, h *Host, _ string) error {
			_, ripNet := e.st.privIface()
			port := 0
			for _, s := range e.st.Services {
				if s.Proto == "tcp" && len(s.RealServers) > 0 {
					port = s.RealServers[0].Port
					break
				}
			}
			if ripNet == nil || port == 0 {
				return fmt.Errorf("lab state has no private network or TCP service")
			}
			c, err := nftConn(e.handle(h.Role))
			if err != nil {
				return err
			}
			t := labTable()
			ex := append(matchIPNet(12, ripNet), matchPort("tcp", 0, port)...)
			ex = append(ex, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
			c.AddRule(&nftables.Rule{Table: t, Chain: labChain(t, NftForward), Exprs: ex,
				UserData: comment(FirewallDropsRepliesComment)})
			if err := c.Flush(); err != nil {
				return fmt.Errorf("nftables: %w", err)
			}
			rules, err := findRules(c, NftForward, FirewallDropsRepliesComment)
			if err != nil {
				return err
			}
			if len(rules) == 0 {
				return fmt.Errorf("drop rule not found after adding it")
			}
			return nil
		},
	})
}
