package lab

// director-forward-policy-drop (HOWTO Q.3 A.2/A.4): the director's FORWARD
// chain has policy drop and accepts only established/related traffic and
// ICMP echo requests, as Docker leaves it. Under conntrack DNAT the
// client's first packet (ct state new) hits the policy; under IPVS only the
// replies would.
//
//   - nft: table ip docker_like { chain forward { type filter hook forward
//     priority filter; policy drop; ct state established,related counter
//     accept; icmp type echo-request counter accept } }
//   - iptables: iptables -P FORWARD DROP and the same two accepts
//     (nft backend; the ruleset rebuild removes them).

import (
	"context"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// PolicyDropTable is the table the nft variant adds.
const PolicyDropTable = "docker_like"

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: "director-forward-policy-drop",
			Summary:  "FORWARD policy drop with only established/related and echo accepted (as Docker)",
			Variants: []string{"nft", "iptables"}},
		hostKind: RoleDirector,
		inject:   injectForwardPolicyDrop,
	})
}

func injectForwardPolicyDrop(ctx context.Context, e *env, h *Host, variant string) error {
	if variant == "iptables" {
		for _, args := range [][]string{
			{"iptables", "-A", "FORWARD", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
			{"iptables", "-A", "FORWARD", "-p", "icmp", "--icmp-type", "echo-request", "-j", "ACCEPT"},
			{"iptables", "-P", "FORWARD", "DROP"},
		} {
			if err := e.runIptables(h.Role, args...); err != nil {
				return err
			}
		}
	} else {
		c, err := nftConn(e.handle(h.Role))
		if err != nil {
			return err
		}
		t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: PolicyDropTable}
		ch := addBaseChain(c, t, "forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter, nftables.ChainPolicyDrop)
		est := binaryutil.NativeEndian.PutUint32(2 | 4) // established, related
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: est, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
			&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictAccept},
		}})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{8}},
			&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictAccept},
		}})
		if err := c.Flush(); err != nil {
			return fmt.Errorf("nftables: %w", err)
		}
	}
	// Verify: a forward base chain with policy drop exists.
	c, err := nftConn(e.handle(h.Role))
	if err != nil {
		return err
	}
	chains, err := c.ListChains()
	if err != nil {
		return err
	}
	for _, ch := range chains {
		if ch.Hooknum != nil && *ch.Hooknum == *nftables.ChainHookForward && ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop {
			return nil
		}
	}
	return fmt.Errorf("no forward chain with policy drop after injecting")
}
