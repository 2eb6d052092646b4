package lab

// director-no-masquerade (HOWTO Q.1 A.2, Q.2 A.2): the director's
// masquerade rule for the real servers' network is deleted, so traffic the
// real servers start (ping, traceroute to the client) leaves the public
// side with the RIP as source and gets no answer. LVS connections still
// work: their replies are un-DNATed by conntrack.

import (
	"context"
	"fmt"
)

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: "director-no-masquerade", Summary: "remove the director's masquerade rule for the RIP net"},
		hostKind:  RoleDirector,
		inject: func(ctx context.Context, e *env, h *Host, _ string) error {
			c, err := nftConn(e.handle(h.Role))
			if err != nil {
				return err
			}
			rules, err := findRules(c, NftPostrouting, MasqueradeComment())
			if err != nil {
				return err
			}
			for _, r := range rules {
				if err := c.DelRule(r); err != nil {
					return err
				}
			}
			if err := c.Flush(); err != nil {
				return fmt.Errorf("nftables: %w", err)
			}
			left, err := findRules(c, NftPostrouting, MasqueradeComment())
			if err != nil {
				return err
			}
			if len(left) > 0 {
				return fmt.Errorf("masquerade rule still present")
			}
			return nil
		},
	})
}
