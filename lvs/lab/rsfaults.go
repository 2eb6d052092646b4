package lab

// Helpers shared by the real-server faults (fault_rs_*.go, fault_link_down.go):
// a filter chain on a real server, the real server's service ports, a
// second leg on the public LAN.

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// rsPort is the port host serves for the first service of proto.
func (s *State) rsPort(role, proto string) (net.IP, int) {
	for _, svc := range s.Services {
		if svc.Proto != proto {
			continue
		}
		for _, r := range svc.RealServers {
			if r.Name == role {
				return net.ParseIP(r.Address).To4(), r.Port
			}
		}
	}
	return nil, 0
}

// rsFilterRule adds a rule to the filter chain on hook ("input" or
// "output") of table ip lvsdoctor in host's namespace (creating both), with
// the matches ex, a counter, the verdict v and the comment
// FaultCommentPrefix+id; it then reads the rule back.
func (e *env) rsFilterRule(h *Host, hook string, ex []expr.Any, v expr.Any, id string) error {
	c, err := nftConn(e.handle(h.Role))
	if err != nil {
		return err
	}
	t := c.AddTable(labTable())
	hn := nftables.ChainHookInput
	if hook == "output" {
		hn = nftables.ChainHookOutput
	}
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: hook, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: hn, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	ex = append(append([]expr.Any(nil), ex...), &expr.Counter{}, v)
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: ex, UserData: comment(FaultCommentPrefix + id)})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("%s: nftables: %w", h.Role, err)
	}
	rules, err := findRules(c, hook, FaultCommentPrefix+id)
	if err != nil {
		return err
	}
	if len(rules) == 0 {
		return fmt.Errorf("%s: rule %q not found after adding it", h.Role, FaultCommentPrefix+id)
	}
	return nil
}

// SecondLegName is the real server's extra interface some faults add: a
// veth whose peer is a port of the public bridge (the client's LAN).
const SecondLegName = "pub0"

// addSecondLeg gives host a second interface on the client's LAN (no
// address) and a route to the client's address through it, and waits for
// its carrier. Clear removes both (stray links, non-kernel routes).
func (e *env) addSecondLeg(ctx context.Context, h *Host) (netlink.Link, error) {
	sw, err := e.nl(RoleSwitch)
	if err != nil {
		return nil, err
	}
	defer sw.Close()
	hn, err := e.nl(h.Role)
	if err != nil {
		return nil, err
	}
	defer hn.Close()
	peer := h.Role + "-pub"
	if len(peer) > 15 {
		return nil, fmt.Errorf("%s: switch port name %q too long", h.Role, peer)
	}
	l, err := hn.LinkByName(SecondLegName)
	if err != nil {
		v := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: SecondLegName, Namespace: netlink.NsFd(int(e.handle(h.Role)))},
			PeerName:      peer,
			PeerNamespace: netlink.NsFd(int(e.handle(RoleSwitch))),
		}
		if err := sw.LinkAdd(v); err != nil {
			return nil, fmt.Errorf("%s: veth %s/%s: %w", h.Role, SecondLegName, peer, err)
		}
		if l, err = hn.LinkByName(SecondLegName); err != nil {
			return nil, err
		}
	}
	pl, err := sw.LinkByName(peer)
	if err != nil {
		return nil, err
	}
	br, err := sw.LinkByName("pub")
	if err != nil {
		return nil, err
	}
	if err := sw.LinkSetMaster(pl, br); err != nil {
		return nil, fmt.Errorf("switch port %s to pub: %w", peer, err)
	}
	if err := sw.LinkSetUp(pl); err != nil {
		return nil, err
	}
	if err := hn.LinkSetUp(l); err != nil {
		return nil, err
	}
	cip := e.st.ClientIP()
	r := &netlink.Route{Dst: &net.IPNet{IP: cip, Mask: net.CIDRMask(32, 32)}, LinkIndex: l.Attrs().Index, Scope: netlink.SCOPE_LINK, Table: unix.RT_TABLE_MAIN}
	if err := hn.RouteReplace(r); err != nil {
		return nil, fmt.Errorf("%s: route %s dev %s: %w", h.Role, cip, SecondLegName, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err = hn.LinkByName(SecondLegName)
		if err == nil && l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %s has no carrier", h.Role, SecondLegName)
		}
		time.Sleep(pollEvery)
	}
	if got, err := e.routeGet(h.Role, cip); err != nil || got.LinkIndex != l.Attrs().Index {
		return nil, fmt.Errorf("%s: route to %s does not leave by %s (%v, %v)", h.Role, cip, SecondLegName, got, err)
	}
	return l, nil
}
