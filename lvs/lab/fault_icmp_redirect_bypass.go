package lab

// icmp-redirect-bypass (HOWTO Q.2, Q.3 "same media"): a one-arm director
// (flat topology: client and real servers on its one LAN) with
// send_redirects=1 forwards the real servers' replies out of the interface
// they came in on and tells each real server, by ICMP redirect, to send
// to the client directly. A real server that accepts the redirect (it
// keeps it as a cached route for 300 s) then replies from its RIP straight
// to the client, past the director's translation.
//
// It needs the flat lab and a datapath that lets the redirects out:
// conntrack NAT drops them for NATed flows, so the lab's stateless
// datapath (FaultInfo.Lab). Clear sets send_redirects back to 0; the real
// servers' cached redirects are flushed with their routes' re-application
// (see applyHost).

import (
	"context"
	"fmt"
)

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: "icmp-redirect-bypass",
			Summary: "one-arm director (flat lab, stateless datapath) with send_redirects=1",
			Lab:     Options{Topology: TopologyFlat, Datapath: DatapathNftStateless}},
		hostKind: RoleDirector,
		inject: func(ctx context.Context, e *env, h *Host, _ string) error {
			o := e.st.Options
			if o.Topology != TopologyFlat || o.Datapath != DatapathNftStateless {
				return fmt.Errorf("%w: icmp-redirect-bypass needs a one-arm lab whose datapath lets redirects out (conntrack NAT drops them): lvsdoctor lab up --topology flat --datapath nft-stateless (this lab: topology %s, datapath %s)",
					ErrBadFault, o.Topology, o.Datapath)
			}
			return e.sendRedirects(h)
		},
	})
}

// sendRedirects turns on ICMP redirects on the director's one arm (all and
// the interface: the kernel sends them if either says so) and checks they
// took.
func (e *env) sendRedirects(h *Host) error {
	arm := e.st.vipIface()
	kv := []sysctl{
		{Key: "net.ipv4.conf.all.send_redirects", Value: "1"},
		{Key: "net.ipv4.conf." + arm.Name + ".send_redirects", Value: "1"},
	}
	if err := setSysctls(e.handle(h.Role), kv); err != nil {
		return err
	}
	for _, s := range kv {
		if err := e.checkSysctl(h.Role, s.Key, s.Value); err != nil {
			return err
		}
	}
	return nil
}
