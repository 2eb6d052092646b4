package lab

// rs-rip-missing (HOWTO Q.4 A.4): the RIP is not configured on the real
// server. rs1 moves to another free address of its subnet and forwards
// (ip_forward=1), and the director keeps a permanent neighbour entry for
// the RIP with rs1's MAC (without it the director's ARP for the RIP fails
// and nothing reaches rs1). The request arrives at rs1, is not local, and
// is forwarded: rs1 ARPs for the RIP on its own subnet, gets no answer and
// sends host unreachable. Clear restores the address, the sysctls and the
// neighbour table; the service's socket stays bound to the RIP and works
// again once the address is back.

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
		FaultInfo: FaultInfo{ID: "rs-rip-missing", Summary: "move the real server to another address of its subnet, ip_forward=1; the director pins the RIP's neighbour entry"},
		hostKind:  "rs",
		inject:    injectRIPMissing,
	})
}

// freeAddr is an address of n that no lab host uses, from the top down.
func (s *State) freeAddr(n *net.IPNet) net.IP {
	used := map[string]bool{}
	for _, h := range s.Hosts {
		for _, i := range h.Ifaces {
			for _, a := range i.Addrs {
				if ip, _, err := net.ParseCIDR(a); err == nil {
					used[ip.String()] = true
				}
			}
		}
	}
	ones, bits := n.Mask.Size()
	size := 1 << (bits - ones)
	base := n.IP.To4()
	for i := size - 3; i > 0; i-- {
		ip := make(net.IP, 4)
		v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
		v += uint32(i)
		ip[0], ip[1], ip[2], ip[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		if !used[ip.String()] {
			return ip
		}
	}
	return nil
}

func injectRIPMissing(ctx context.Context, e *env, h *Host, _ string) error {
	if len(h.Ifaces) == 0 {
		return fmt.Errorf("%s has no interface", h.Role)
	}
	ifc := h.Ifaces[0]
	rip, lan := e.st.ifaceAddr(h.Role, ifc.Name)
	if rip == nil {
		return fmt.Errorf("%s %s has no address", h.Role, ifc.Name)
	}
	other := e.st.freeAddr(lan)
	if other == nil {
		return fmt.Errorf("no free address in %s", lan)
	}
	hn, err := e.nl(h.Role)
	if err != nil {
		return err
	}
	defer hn.Close()
	l, err := hn.LinkByName(ifc.Name)
	if err != nil {
		return err
	}
	// The RIP goes first: deleting a primary address would take its
	// secondaries with it. The last address leaving the interface takes
	// its routes along, so the default route is put back.
	ones, _ := lan.Mask.Size()
	if err := hn.AddrDel(l, &netlink.Addr{IPNet: &net.IPNet{IP: rip, Mask: net.CIDRMask(ones, 32)}}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("%s: delete %s: %w", h.Role, rip, err)
	}
	if err := hn.AddrReplace(l, &netlink.Addr{IPNet: &net.IPNet{IP: other, Mask: net.CIDRMask(ones, 32)}}); err != nil {
		return fmt.Errorf("%s: address %s: %w", h.Role, other, err)
	}
	if h.Gateway != "" {
		if err := hn.RouteReplace(&netlink.Route{Gw: net.ParseIP(h.Gateway), LinkIndex: l.Attrs().Index, Table: unix.RT_TABLE_MAIN}); err != nil {
			return fmt.Errorf("%s: default via %s: %w", h.Role, h.Gateway, err)
		}
	}
	if err := setSysctls(e.handle(h.Role), []sysctl{{Key: "net.ipv4.ip_forward", Value: "1"}}); err != nil {
		return err
	}

	priv, _ := e.st.privIface()
	if priv == nil {
		return fmt.Errorf("director has no private interface")
	}
	dn, err := e.nl(RoleDirector)
	if err != nil {
		return err
	}
	defer dn.Close()
	dl, err := dn.LinkByName(priv.Name)
	if err != nil {
		return err
	}
	n := &netlink.Neigh{LinkIndex: dl.Attrs().Index, Family: netlink.FAMILY_V4, IP: rip, State: netlink.NUD_PERMANENT, HardwareAddr: l.Attrs().HardwareAddr}
	if err := dn.NeighSet(n); err != nil {
		return fmt.Errorf("director: neighbour %s lladdr %s: %w", rip, n.HardwareAddr, err)
	}
	if r, err := e.routeGet(h.Role, rip); err != nil || r.Type == unix.RTN_LOCAL {
		return fmt.Errorf("%s: %s is still local (%v, %v)", h.Role, rip, r, err)
	}
	return nil
}
