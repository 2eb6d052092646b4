package lab

// director-rpfilter-requests (HOWTO Q.3 A.4): the director's route back to
// the client leaves by the private interface (CIP/32 via the second router
// on the private LAN), and strict rp_filter (1 on all and on the VIP's
// interface) rejects the client's packets arriving on the public one.
//
//   - cold (default): the client's neighbour entry for the VIP is flushed.
//     The director then ignores the client's ARP for the VIP by the same
//     reverse-path test: no SYN is ever sent (the usual case).
//   - warm: the client gets a PERMANENT neighbour entry for the VIP with
//     the MAC of the director's public interface, so the SYNs reach the
//     director and die in rp_filter (IPReversePathFilter rises).

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
		FaultInfo: FaultInfo{ID: "director-rpfilter-requests",
			Summary:  "route the client via the director's private side, rp_filter=1",
			Variants: []string{"cold", "warm"}},
		hostKind: RoleDirector,
		inject:   injectRPFilterRequests,
	})
}

func injectRPFilterRequests(ctx context.Context, e *env, h *Host, variant string) error {
	cip := e.st.ClientIP()
	pub := e.st.vipIface()
	priv, privNet := e.st.privIface()
	if priv == nil {
		return fmt.Errorf("director has no private interface")
	}
	rtr := e.st.routerIP(privNet)
	vip := net.ParseIP(e.st.Services[0].VIP).To4()
	dn, err := e.nl(h.Role)
	if err != nil {
		return err
	}
	defer dn.Close()
	pl, err := dn.LinkByName(priv.Name)
	if err != nil {
		return err
	}
	r := &netlink.Route{Dst: &net.IPNet{IP: cip, Mask: net.CIDRMask(32, 32)}, Gw: rtr, LinkIndex: pl.Attrs().Index, Table: unix.RT_TABLE_MAIN}
	if err := dn.RouteReplace(r); err != nil {
		return fmt.Errorf("director: route %s via %s dev %s: %w", cip, rtr, priv.Name, err)
	}
	if err := setSysctls(e.handle(h.Role), []sysctl{
		{Key: "net.ipv4.conf.all.rp_filter", Value: "1"},
		{Key: "net.ipv4.conf." + pub.Name + ".rp_filter", Value: "1"},
	}); err != nil {
		return err
	}
	if got, err := e.routeGet(h.Role, cip); err != nil || got.LinkIndex != pl.Attrs().Index {
		return fmt.Errorf("director: route to %s does not leave by %s (%v, %v)", cip, priv.Name, got, err)
	}

	cn, err := e.nl(RoleClient)
	if err != nil {
		return err
	}
	defer cn.Close()
	cl, err := cn.LinkByName("eth0")
	if err != nil {
		return err
	}
	neigh := &netlink.Neigh{LinkIndex: cl.Attrs().Index, Family: netlink.FAMILY_V4, IP: vip}
	if variant == "warm" {
		dl, err := dn.LinkByName(pub.Name)
		if err != nil {
			return err
		}
		neigh.State = netlink.NUD_PERMANENT
		neigh.HardwareAddr = dl.Attrs().HardwareAddr
		if err := cn.NeighSet(neigh); err != nil {
			return fmt.Errorf("client: neighbour %s lladdr %s: %w", vip, neigh.HardwareAddr, err)
		}
	} else if err := cn.NeighDel(neigh); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("client: flush neighbour %s: %w", vip, err)
	}
	ns, err := cn.NeighList(cl.Attrs().Index, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	for _, n := range ns {
		if n.IP.Equal(vip) {
			if variant == "warm" && n.State&netlink.NUD_PERMANENT == 0 {
				return fmt.Errorf("client: neighbour %s is not permanent", vip)
			}
			if variant == "cold" && n.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT) != 0 {
				return fmt.Errorf("client: neighbour %s still resolved", vip)
			}
		}
	}
	return nil
}
