package lab

// director-no-forwarding (HOWTO Q.3 A.4): net.ipv4.ip_forward=0 on the
// director. Writing ip_forward also sets conf.all.forwarding and every
// interface's forwarding; under conntrack NAT the requests then die on the
// director (seen on eth0, never on eth1).

import (
	"context"
)

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: "director-no-forwarding", Summary: "set net.ipv4.ip_forward=0 on the director"},
		hostKind:  RoleDirector,
		inject: func(ctx context.Context, e *env, h *Host, _ string) error {
			if err := setSysctls(e.handle(h.Role), []sysctl{{Key: "net.ipv4.ip_forward", Value: "0"}}); err != nil {
				return err
			}
			return e.checkSysctl(h.Role, "net.ipv4.conf.all.forwarding", "0")
		},
	})
}
