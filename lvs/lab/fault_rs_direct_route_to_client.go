package lab

// rs-direct-route-to-client (HOWTO Q.4 A.6): a more specific route sends
// the real server's replies past the director: rs1 gets a second leg on
// the client's LAN (pub0) and a route to CIP/32 through it, rp_filter 0.
// The requests arrive through the director; the replies go straight to
// the client from the RIP, which matches no connection there.

import (
	"context"
	"fmt"
)

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: "rs-direct-route-to-client", Summary: "second interface on the real server on the client's LAN with a route to the client"},
		hostKind:  "rs",
		inject: func(ctx context.Context, e *env, h *Host, _ string) error {
			if len(h.Ifaces) == 0 {
				return fmt.Errorf("%s has no interface", h.Role)
			}
			if _, err := e.addSecondLeg(ctx, h); err != nil {
				return err
			}
			return e.checkSysctl(h.Role, "net.ipv4.conf.all.rp_filter", "0")
		},
	})
}
