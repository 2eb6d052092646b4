package lab

// client-on-director (HOWTO Q.3 A.5): the client runs on the director
// itself. The HOWTO calls it not a valid test: the director's own
// connections do not take the path real clients take (current IPVS still
// schedules them). The lab variant is a topology, not a change to a
// running lab: `lab up --topology client-on-director` writes the director
// as the client (address 203.0.113.1) and balances the director's own
// connections (nat output chains). Injecting checks that the lab is one.

import (
	"context"
	"fmt"
)

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: "client-on-director",
			Summary: "the topology names the director as the client (lab up --topology client-on-director)",
			Lab:     Options{Topology: TopologyClientOnDirector}},
		hostKind: RoleDirector,
		inject: func(ctx context.Context, e *env, h *Host, _ string) error {
			if e.st.Options.Topology != TopologyClientOnDirector {
				return fmt.Errorf("%w: client-on-director is a lab topology: lvsdoctor lab up --topology client-on-director (its topology file names the director as the client)", ErrBadFault)
			}
			return nil
		},
	})
}
