package lab

// rs-rpfilter (HOWTO Q.4 A.5): strict rp_filter on the real server drops
// the requests, because its route back to the client leaves by another
// interface: rs1 gets a second leg on the client's LAN (pub0) with a
// route to CIP/32 through it, and rp_filter=1 on all and eth0. The
// requests arrive on eth0 and die in the reverse-path test
// (TcpExt.IPReversePathFilter rises).

import (
	"context"
	"fmt"
)

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: "rs-rpfilter", Summary: "second interface on the real server with the route to the client, rp_filter=1"},
		hostKind:  "rs",
		inject: func(ctx context.Context, e *env, h *Host, _ string) error {
			if len(h.Ifaces) == 0 {
				return fmt.Errorf("%s has no interface", h.Role)
			}
			if _, err := e.addSecondLeg(ctx, h); err != nil {
				return err
			}
			return setSysctls(e.handle(h.Role), []sysctl{
				{Key: "net.ipv4.conf.all.rp_filter", Value: "1"},
				{Key: "net.ipv4.conf." + h.Ifaces[0].Name + ".rp_filter", Value: "1"},
			})
		},
	})
}
