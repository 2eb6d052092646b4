package lab

// service-missing (HOWTO Q.3 A.5): the virtual service is not in the
// director's table, so the director's own stack answers the client.
//
//   - delete (default): the TCP service's DNAT rule is deleted; the SYN to
//     VIP:80 is local and answered with a RST (nothing listens).
//   - all-weights-zero: emulates an IPVS service whose real servers all
//     have weight 0 (IPVS then answers ICMP port unreachable from the VIP,
//     ip_vs_leave): the DNAT rule is replaced by a rule for the same
//     VIP:VPORT that sends to no real server and answers port unreachable,
//     in an input chain of the lab table:
//     chain filter_input { type filter hook input priority filter; policy accept;
//     ip daddr VIP tcp dport 80 counter reject comment "..." }

import (
	"context"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Names the fault adds.
const (
	NftInput               = "filter_input"
	AllWeightsZeroComment  = FaultCommentPrefix + "service-missing: every real server weight 0"
	serviceMissingVariantZ = "all-weights-zero"
)

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: "service-missing",
			Summary:  "delete the TCP service's DNAT rule (all-weights-zero: answer port unreachable as IPVS does)",
			Variants: []string{"delete", serviceMissingVariantZ}},
		hostKind: RoleDirector,
		inject:   injectServiceMissing,
	})
}

func injectServiceMissing(ctx context.Context, e *env, h *Host, variant string) error {
	svc, ok := e.st.firstService("tcp")
	if !ok {
		return fmt.Errorf("lab state has no TCP service")
	}
	c, err := nftConn(e.handle(h.Role))
	if err != nil {
		return err
	}
	if err := e.deleteServiceRule(c, svc); err != nil {
		return err
	}
	if variant != serviceMissingVariantZ {
		return nil
	}
	t := labTable()
	in := addBaseChain(c, t, NftInput, nftables.ChainTypeFilter, nftables.ChainHookInput, nftables.ChainPriorityFilter, nftables.ChainPolicyAccept)
	ex := append(matchService(svc), &expr.Counter{}, &expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 3})
	c.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: ex, UserData: comment(AllWeightsZeroComment)})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if rs, err := findRules(c, NftInput, AllWeightsZeroComment); err != nil || len(rs) == 0 {
		return fmt.Errorf("reject rule not found after adding it (%v)", err)
	}
	return nil
}
