package lab

// director-rpfilter-replies (HOWTO Q.3 A.2): strict rp_filter on the
// director drops the real server's replies, because its route back to the
// RIP leaves by another interface. The director gets a second interface on
// the real servers' LAN (eth2, no address) with a route to rs1's RIP
// through it, and rp_filter=1 on all and on the private interface (eth1).
// The requests for rs1 then leave by eth2; rs1's replies arrive on eth1
// and die in the reverse-path test (TcpExt.IPReversePathFilter rises).
//
// rs1 gets a PERMANENT neighbour entry for the DIP with eth1's MAC: without
// it rs1's ARP for the DIP is ignored on eth1 by the same test and answered
// by eth2, and within 30-45 s rs1 sends to eth2's MAC and the fault heals
// itself (FAULTS.md). Clear removes eth2 (a stray link), the route with it,
// the sysctls and the permanent entry.

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RPFilterRepliesIface is the director's second private interface.
const RPFilterRepliesIface = "eth2"

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: "director-rpfilter-replies",
			Summary: "second private interface on the director with the route to rs1 through it, rp_filter=1; rs1 pins the DIP's MAC"},
		hostKind: RoleDirector,
		inject:   injectRPFilterReplies,
	})
}

func injectRPFilterReplies(ctx context.Context, e *env, h *Host, _ string) error {
	priv, _ := e.st.privIface()
	if priv == nil || len(e.st.Services) == 0 || len(e.st.Services[0].RealServers) == 0 {
		return fmt.Errorf("lab state has no private interface or real server")
	}
	rs := e.st.Services[0].RealServers[0]
	rip := net.ParseIP(rs.Address).To4()
	dip := e.st.directorAddrOn(rip)
	if dip == nil {
		return fmt.Errorf("director has no address on %s's subnet", rs.Name)
	}
	sw, err := e.nl(RoleSwitch)
	if err != nil {
		return err
	}
	defer sw.Close()
	dn, err := e.nl(h.Role)
	if err != nil {
		return err
	}
	defer dn.Close()

	// eth2: a veth whose peer is a port of the real servers' bridge.
	peer := "dir-" + RPFilterRepliesIface
	l, err := dn.LinkByName(RPFilterRepliesIface)
	if err != nil {
		v := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: RPFilterRepliesIface, Namespace: netlink.NsFd(int(e.handle(h.Role)))},
			PeerName:      peer,
			PeerNamespace: netlink.NsFd(int(e.handle(RoleSwitch))),
		}
		if err := sw.LinkAdd(v); err != nil {
			return fmt.Errorf("veth %s/%s: %w", RPFilterRepliesIface, peer, err)
		}
		if l, err = dn.LinkByName(RPFilterRepliesIface); err != nil {
			return err
		}
	}
	pl, err := sw.LinkByName(peer)
	if err != nil {
		return err
	}
	br, err := sw.LinkByName(priv.Bridge)
	if err != nil {
		return err
	}
	if err := sw.LinkSetMaster(pl, br); err != nil {
		return fmt.Errorf("switch port %s to %s: %w", peer, priv.Bridge, err)
	}
	if err := sw.LinkSetUp(pl); err != nil {
		return err
	}
	if err := dn.LinkSetUp(l); err != nil {
		return err
	}
	if err := waitCarrier(ctx, dn, RPFilterRepliesIface, 5*time.Second); err != nil {
		return fmt.Errorf("director: %w", err)
	}
	r := &netlink.Route{Dst: &net.IPNet{IP: rip, Mask: net.CIDRMask(32, 32)}, LinkIndex: l.Attrs().Index,
		Scope: netlink.SCOPE_LINK, Table: unix.RT_TABLE_MAIN}
	if err := dn.RouteReplace(r); err != nil {
		return fmt.Errorf("director: route %s dev %s: %w", rip, RPFilterRepliesIface, err)
	}
	if err := setSysctls(e.handle(h.Role), []sysctl{
		{Key: "net.ipv4.conf.all.rp_filter", Value: "1"},
		{Key: "net.ipv4.conf." + priv.Name + ".rp_filter", Value: "1"},
	}); err != nil {
		return err
	}
	if got, err := e.routeGet(h.Role, rip); err != nil || got.LinkIndex != l.Attrs().Index {
		return fmt.Errorf("director: route to %s does not leave by %s (%v, %v)", rip, RPFilterRepliesIface, got, err)
	}

	// rs1 keeps sending to eth1's MAC.
	privLink, err := dn.LinkByName(priv.Name)
	if err != nil {
		return err
	}
	rn, err := e.nl(rs.Name)
	if err != nil {
		return err
	}
	defer rn.Close()
	rh := e.st.Host(rs.Name)
	rl, err := rn.LinkByName(rh.Ifaces[0].Name)
	if err != nil {
		return err
	}
	n := &netlink.Neigh{LinkIndex: rl.Attrs().Index, Family: netlink.FAMILY_V4, IP: dip.To4(),
		State: netlink.NUD_PERMANENT, HardwareAddr: privLink.Attrs().HardwareAddr}
	if err := rn.NeighSet(n); err != nil {
		return fmt.Errorf("%s: neighbour %s lladdr %s: %w", rs.Name, dip, n.HardwareAddr, err)
	}
	return nil
}

// directorAddrOn is the director's address on the subnet of a (the DIP for
// a RIP).
func (s *State) directorAddrOn(a net.IP) net.IP {
	for _, i := range s.Host(RoleDirector).Ifaces {
		for _, c := range i.Addrs {
			if ip, n, err := net.ParseCIDR(c); err == nil && n.Contains(a) {
				if ones, _ := n.Mask.Size(); ones < 32 {
					return ip.To4()
				}
			}
		}
	}
	return nil
}

// waitCarrier waits until link name of the handle has carrier.
func waitCarrier(ctx context.Context, hn *netlink.Handle, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		l, err := hn.LinkByName(name)
		if err == nil && l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s has no carrier", name)
		}
		time.Sleep(pollEvery)
	}
}
