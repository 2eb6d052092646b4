package lab

// rs-wrong-gateway (HOWTO Q.4 A.6, Q.2): the real server's replies do not
// go back through the director.
//
//   - router-reaches-client: the default route points at the second router
//     on the private LAN, which forwards the SYN+ACK (source RIP) to the
//     client; the client did not talk to the RIP and answers RST.
//   - router-drops: the same route, and the router has a blackhole route
//     for the client's address, so the replies die there. A blackhole for
//     CIP/32 was chosen over the router's ip_forward=0 or deleting its
//     public address because it changes nothing else on the router.
//   - no-default: the real server's default route is deleted; its replies
//     fail at the route lookup (ENETUNREACH) and never leave it.

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: "rs-wrong-gateway",
			Summary:  "point the real server's default route away from the director (or delete it)",
			Variants: []string{"router-reaches-client", "router-drops", "no-default"}},
		hostKind: "rs",
		inject:   injectWrongGateway,
	})
}

// routerIP returns the router's address on the LAN of net n.
func (s *State) routerIP(n *net.IPNet) net.IP {
	r := s.Host(RoleRouter)
	for _, i := range r.Ifaces {
		for _, a := range i.Addrs {
			if ip, _, err := net.ParseCIDR(a); err == nil && n.Contains(ip) {
				return ip.To4()
			}
		}
	}
	return nil
}

func injectWrongGateway(ctx context.Context, e *env, h *Host, variant string) error {
	_, lan := e.st.ifaceAddr(h.Role, "eth0")
	cip := e.st.ClientIP()
	hn, err := e.nl(h.Role)
	if err != nil {
		return err
	}
	defer hn.Close()
	if variant == "no-default" {
		err := hn.RouteDel(&netlink.Route{Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Table: unix.RT_TABLE_MAIN})
		if err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("delete default route: %w", err)
		}
		if r, err := e.routeGet(h.Role, cip); err == nil {
			return fmt.Errorf("%s still routes %s (via %s)", h.Role, cip, r.Gw)
		}
		return nil
	}
	rtr := e.st.routerIP(lan)
	if rtr == nil {
		return fmt.Errorf("no router on %s", lan)
	}
	if err := hn.RouteReplace(&netlink.Route{Dst: nil, Gw: rtr, Table: unix.RT_TABLE_MAIN}); err != nil {
		return fmt.Errorf("default via %s: %w", rtr, err)
	}
	if r, err := e.routeGet(h.Role, cip); err != nil || !r.Gw.Equal(rtr) {
		return fmt.Errorf("%s: route to %s does not go via %s (%v, %v)", h.Role, cip, rtr, r, err)
	}
	if variant == "router-drops" {
		rn, err := e.nl(RoleRouter)
		if err != nil {
			return err
		}
		defer rn.Close()
		bh := &netlink.Route{Dst: &net.IPNet{IP: cip, Mask: net.CIDRMask(32, 32)}, Type: unix.RTN_BLACKHOLE, Table: unix.RT_TABLE_MAIN}
		if err := rn.RouteReplace(bh); err != nil {
			return fmt.Errorf("router: blackhole %s: %w", cip, err)
		}
		if _, err := e.routeGet(RoleRouter, cip); err == nil {
			return fmt.Errorf("router still routes %s", cip)
		}
	}
	return nil
}
