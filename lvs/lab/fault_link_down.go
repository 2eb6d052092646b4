package lab

// link-down: an interface on the path has no carrier. The switch-side
// peer of the real server's link (its port in the NAME-sw namespace) is
// set down, as a pulled cable or a dead switch port would: the real
// server's interface stays administratively up with NO-CARRIER, and
// nothing reaches it. Clear sets every switch port up again.

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: "link-down", Summary: "set the switch port of the real server's link down (no carrier)"},
		hostKind:  "rs",
		inject: func(ctx context.Context, e *env, h *Host, _ string) error {
			if len(h.Ifaces) == 0 {
				return fmt.Errorf("%s has no interface", h.Role)
			}
			ifc := h.Ifaces[0]
			sw, err := e.nl(RoleSwitch)
			if err != nil {
				return err
			}
			defer sw.Close()
			p, err := sw.LinkByName(ifc.Peer)
			if err != nil {
				return fmt.Errorf("switch port %s: %w", ifc.Peer, err)
			}
			if err := sw.LinkSetDown(p); err != nil {
				return fmt.Errorf("switch port %s down: %w", ifc.Peer, err)
			}
			hn, err := e.nl(h.Role)
			if err != nil {
				return err
			}
			defer hn.Close()
			deadline := time.Now().Add(5 * time.Second)
			for {
				l, err := hn.LinkByName(ifc.Name)
				if err == nil && l.Attrs().RawFlags&unix.IFF_LOWER_UP == 0 {
					return nil
				}
				if time.Now().After(deadline) || ctx.Err() != nil {
					return fmt.Errorf("%s %s still has carrier", h.Role, ifc.Name)
				}
				time.Sleep(pollEvery)
			}
		},
	})
}
