package lab

// vip-not-on-director (HOWTO Q.3 A.4): the VIP is not local on the
// director. The VIP address is deleted and the client's neighbour entry for
// it flushed: the client's ARP for the VIP then goes unanswered and no
// request reaches the director. (With the entry still warm, conntrack DNAT
// in prerouting would forward the requests anyway; IPVS would not.)

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
		FaultInfo: FaultInfo{ID: "vip-not-on-director", Summary: "delete the VIP address from the director"},
		hostKind:  RoleDirector,
		inject:    injectVIPNotOnDirector,
	})
}

func injectVIPNotOnDirector(ctx context.Context, e *env, h *Host, _ string) error {
	vip := net.ParseIP(e.st.Services[0].VIP).To4()
	dn, err := e.nl(h.Role)
	if err != nil {
		return err
	}
	defer dn.Close()
	addrs, err := dn.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	deleted := false
	for _, a := range addrs {
		if a.IP.Equal(vip) {
			l, err := dn.LinkByIndex(a.LinkIndex)
			if err != nil {
				return err
			}
			if err := dn.AddrDel(l, &a); err != nil {
				return fmt.Errorf("director: delete %s: %w", a.IPNet, err)
			}
			deleted = true
		}
	}
	if !deleted {
		return fmt.Errorf("director holds no address %s", vip)
	}
	if rs, err := dn.RouteGet(vip); err == nil && len(rs) > 0 && rs[0].Type == unix.RTN_LOCAL {
		return fmt.Errorf("director: %s is still local", vip)
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
	if err := cn.NeighDel(neigh); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("client: flush neighbour %s: %w", vip, err)
	}
	return nil
}
