package lab

// rs-weight-zero (warning): a real server is quiesced on the director
// (weight 0): it is left out of every service's DNAT map while the
// topology file still gives it weight 1, so no connection is sent to it.

import (
	"context"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: "rs-weight-zero", Summary: "leave the real server out of the director's maps (weight 0)"},
		hostKind:  "rs",
		inject:    injectRSWeightZero,
	})
}

func injectRSWeightZero(ctx context.Context, e *env, h *Host, _ string) error {
	c, err := nftConn(e.handle(RoleDirector))
	if err != nil {
		return err
	}
	t := labTable()
	n := 0
	for _, svc := range e.st.Services {
		in := false
		for _, rs := range svc.RealServers {
			in = in || (rs.Name == h.Role && rs.Weight > 0)
		}
		if !in {
			continue
		}
		if err := e.deleteServiceRule(c, svc); err != nil {
			return err
		}
		pick, ok, err := serviceMap(c, t, svc, h.Role)
		if err != nil {
			return err
		}
		if !ok {
			continue // no real server left: the service has no rule, as with every weight 0
		}
		ex := append(matchService(svc), &expr.Counter{})
		ex = append(ex, pick...)
		ex = append(ex, &expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1})
		c.AddRule(&nftables.Rule{Table: t, Chain: labChain(t, NftPrerouting), Exprs: ex, UserData: comment(ServiceComment(svc))})
		if err := c.Flush(); err != nil {
			return fmt.Errorf("nftables: %w", err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("%s is in no service with weight > 0", h.Role)
	}
	return nil
}
