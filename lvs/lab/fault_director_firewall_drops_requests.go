package lab

// director-firewall-drops-requests (HOWTO Q.3 A.4): a firewall rule on the
// director drops the client's requests. Under conntrack DNAT the requests
// pass FORWARD already rewritten to the RIP, so the rule matches the RIP
// net and the real servers' port:
//
//   - nft: in the lab's forward chain
//     ip daddr RIPNET tcp dport RPORT counter drop comment "..."
//   - iptables: the same with the iptables command (nft backend):
//     iptables -I FORWARD -d RIPNET -p tcp --dport RPORT -m comment --comment ... -j DROP
//   - iptables-legacy: the same with iptables-legacy (x_tables, invisible to
//     nftables); undo deletes it, Clear's ruleset rebuild does not see it.

import (
	"context"
	"fmt"
	"strconv"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// FirewallDropsRequestsComment is the fault rule's comment.
const FirewallDropsRequestsComment = FaultCommentPrefix + "director-firewall-drops-requests"

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: "director-firewall-drops-requests",
			Summary:  "drop the client's TCP requests in the director's forward filter",
			Variants: []string{"nft", "iptables", "iptables-legacy"}},
		hostKind: RoleDirector,
		inject:   injectFirewallDropsRequests,
		undo: func(ctx context.Context, e *env, h *Host, variant string) error {
			if variant != "iptables-legacy" {
				return nil // the ruleset rebuild removes nft and iptables-nft rules
			}
			args, err := dropRequestsIptables(e, "iptables-legacy", "-D")
			if err != nil {
				return err
			}
			return e.runIptables(h.Role, args...)
		},
	})
}

func dropRequestsIptables(e *env, cmd, op string) ([]string, error) {
	_, ripNet := e.st.privIface()
	svc, ok := e.st.firstService("tcp")
	if ripNet == nil || !ok {
		return nil, fmt.Errorf("lab state has no private network or TCP service")
	}
	return []string{cmd, op, "FORWARD", "-d", ripNet.String(), "-p", "tcp", "--dport", strconv.Itoa(svc.RealServers[0].Port),
		"-m", "comment", "--comment", FirewallDropsRequestsComment, "-j", "DROP"}, nil
}

func injectFirewallDropsRequests(ctx context.Context, e *env, h *Host, variant string) error {
	switch variant {
	case "iptables", "iptables-legacy":
		cmd := "iptables"
		if variant == "iptables-legacy" {
			cmd = "iptables-legacy"
		}
		args, err := dropRequestsIptables(e, cmd, "-I")
		if err != nil {
			return err
		}
		if err := e.runIptables(h.Role, args...); err != nil {
			return err
		}
		args[1] = "-C"
		return e.runIptables(h.Role, args...)
	}
	_, ripNet := e.st.privIface()
	svc, ok := e.st.firstService("tcp")
	if ripNet == nil || !ok {
		return fmt.Errorf("lab state has no private network or TCP service")
	}
	c, err := nftConn(e.handle(h.Role))
	if err != nil {
		return err
	}
	t := labTable()
	ex := append(matchIPNet(16, ripNet), matchPort("tcp", 2, svc.RealServers[0].Port)...)
	ex = append(ex, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
	c.InsertRule(&nftables.Rule{Table: t, Chain: labChain(t, NftForward), Exprs: ex,
		UserData: comment(FirewallDropsRequestsComment)})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	rules, err := findRules(c, NftForward, FirewallDropsRequestsComment)
	if err != nil {
		return err
	}
	if len(rules) == 0 {
		return fmt.Errorf("drop rule not found after adding it")
	}
	return nil
}
