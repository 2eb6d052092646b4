package lab

// replies-not-translated (HOWTO Q.3 A.3): the real server's UDP service
// answers from another of its addresses than the RIP, so the reply matches
// no connection entry on the director and leaves untranslated (here: from
// the director's own public address, as the director masquerades the RIP
// net for Q.1). The real server gets a secondary address on the RIP's LAN,
// its default route prefers it (ip route replace default via DIP src
// SECONDARY), and its UDP echo is restarted bound to 0.0.0.0, so it answers
// from the route's preferred source.

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: "replies-not-translated", Summary: "the real server's UDP service answers from a secondary address"},
		hostKind:  "rs",
		inject:    injectRepliesNotTranslated,
		undo: func(ctx context.Context, e *env, h *Host, _ string) error {
			// Clear restarts the service bound to the RIP once it is stopped.
			return e.stopProc(h.Role, KindUDPEcho)
		},
	})
}

// secondaryAddr picks an unused address of n for a fault's extra address.
func (s *State) secondaryAddr(n *net.IPNet) net.IP {
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
	base := n.IP.To4()
	for x := 253; x > 1; x-- {
		ip := net.IPv4(base[0], base[1], base[2], byte(x)).To4()
		if n.Contains(ip) && !used[ip.String()] {
			return ip
		}
	}
	return nil
}

func injectRepliesNotTranslated(ctx context.Context, e *env, h *Host, _ string) error {
	if len(h.Ifaces) == 0 || len(h.Ifaces[0].Addrs) == 0 {
		return fmt.Errorf("%s has no address", h.Role)
	}
	rip, ripNet, err := net.ParseCIDR(h.Ifaces[0].Addrs[0])
	if err != nil {
		return err
	}
	sec := e.st.secondaryAddr(ripNet)
	if sec == nil {
		return fmt.Errorf("no free address in %s", ripNet)
	}
	port := 0
	for _, p := range e.st.Procs {
		if p.Host == h.Role && p.Kind == KindUDPEcho {
			_, ps, _ := net.SplitHostPort(p.Addr)
			port, _ = strconv.Atoi(ps)
		}
	}
	if port == 0 {
		return fmt.Errorf("%s runs no UDP service", h.Role)
	}
	hn, err := e.nl(h.Role)
	if err != nil {
		return err
	}
	defer hn.Close()
	l, err := hn.LinkByName(h.Ifaces[0].Name)
	if err != nil {
		return err
	}
	ones, _ := ripNet.Mask.Size()
	a, err := netlink.ParseAddr(fmt.Sprintf("%s/%d", sec, ones))
	if err != nil {
		return err
	}
	if err := hn.AddrReplace(l, a); err != nil {
		return fmt.Errorf("%s: address %s: %w", h.Role, a, err)
	}
	gw := net.ParseIP(h.Gateway)
	if err := hn.RouteReplace(&netlink.Route{Gw: gw, Src: sec, LinkIndex: l.Attrs().Index, Table: unix.RT_TABLE_MAIN}); err != nil {
		return fmt.Errorf("%s: default via %s src %s: %w", h.Role, gw, sec, err)
	}
	if err := e.stopProc(h.Role, KindUDPEcho); err != nil {
		return err
	}
	any := net.JoinHostPort("0.0.0.0", strconv.Itoa(port))
	pid, err := e.startProc(h.Role, KindUDPEcho, any)
	if err != nil {
		return err
	}
	for i, p := range e.st.Procs {
		if p.Host == h.Role && p.Kind == KindUDPEcho {
			e.st.Procs[i].PID, e.st.Procs[i].Addr = pid, any
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := e.waitReach(wctx, h.Role, "udp", net.JoinHostPort(rip.String(), strconv.Itoa(port)), "the UDP echo bound to 0.0.0.0"); err != nil {
		return err
	}
	if cip := e.st.ClientIP(); cip != nil {
		rs, err := hn.RouteGet(cip)
		if err != nil || len(rs) == 0 || !rs[0].Src.Equal(sec) {
			return fmt.Errorf("%s: the route to %s does not prefer %s (%v, %v)", h.Role, cip, sec, rs, err)
		}
	}
	return nil
}
