package keepalived

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
)

// Defaults keepalived 2.x applies (check_data.c, validate_check_config).
const (
	DefaultScheduler   = "wlc" // IPVS_DEF_SCHED
	DefaultProtocol    = "udp" // "no protocol set - defaulting to UDP" (keepalived 1.x used TCP)
	DefaultForward     = "masq"
	DefaultPersistence = 360 // IPVS_SVC_PERSISTENT_TIMEOUT, for a bare persistence_timeout
)

// Services converts the virtual servers to the topology's services, with
// keepalived's defaults: protocol UDP (with a warning), scheduler wlc,
// forwarding NAT, weight 1 (or the virtual server's `weight`). A group
// gives one service per address and fwmark. A real server without a
// port gets the virtual server's. Hosts are left empty: keepalived.conf
// does not say how to reach the real servers.
func (c *Config) Services() []topology.Service {
	var out []topology.Service
	for _, vs := range c.VirtualServers {
		proto := vs.Protocol
		if proto == "" {
			proto = DefaultProtocol
		}
		type key struct {
			addr string
			mark uint32
		}
		var keys []key
		switch {
		case vs.Fwmark != 0:
			keys = append(keys, key{mark: vs.Fwmark})
		case vs.Group != "":
			if g := c.Groups[vs.Group]; g != nil {
				for _, e := range g.Entries {
					if e.Fwmark != 0 {
						keys = append(keys, key{mark: e.Fwmark})
					}
					for _, a := range e.Addrs {
						keys = append(keys, key{addr: a})
					}
				}
			}
		default:
			keys = append(keys, key{addr: vs.Addr})
		}
		for _, k := range keys {
			s := topology.Service{VIP: k.addr, Proto: proto, Mark: k.mark, Scheduler: vs.Scheduler,
				Persistent: vs.Persistence != nil}
			if k.mark != 0 {
				s.Proto = "fwmark"
			}
			if s.Scheduler == "" {
				s.Scheduler = DefaultScheduler
			}
			vport := uint16(0)
			if ap, err := netip.ParseAddrPort(k.addr); err == nil {
				vport = ap.Port()
			}
			for _, rs := range vs.RealServers {
				r := topology.RealServer{Address: rs.Addr, Forward: rs.Forward}
				if ap, err := netip.ParseAddrPort(rs.Addr); err == nil && ap.Port() == 0 && vport != 0 {
					r.Address = netip.AddrPortFrom(ap.Addr(), vport).String()
				}
				if r.Forward == "" {
					r.Forward = vs.Forward
				}
				if r.Forward == "" {
					r.Forward = DefaultForward
				}
				w := 1
				if vs.Weight != nil {
					w = *vs.Weight
				}
				if rs.Weight != nil {
					w = *rs.Weight
				}
				r.Weight = &w
				s.RealServers = append(s.RealServers, r)
			}
			out = append(out, s)
		}
	}
	return out
}

// defaultsWarnings notes the defaults keepalived applies that change
// what it programs, and what it refuses.
func (c *Config) defaultsWarnings() {
	for _, vs := range c.VirtualServers {
		if vs.Fwmark == 0 && vs.Protocol == "" && !c.groupIsFwmarkOnly(vs.Group) {
			c.warnf(vs.Pos, "virtual_server %s has no `protocol`: keepalived 2.x then programs UDP (1.x programmed TCP); write `protocol TCP`", vs.label())
		}
		if vs.Fwmark != 0 && vs.Protocol != "" {
			c.warnf(vs.Pos, "virtual_server fwmark %d: protocol %s is ignored for fwmark services", vs.Fwmark, strings.ToUpper(vs.Protocol))
		}
		if len(vs.RealServers) == 0 {
			c.warnf(vs.Pos, "virtual_server %s has no real_server: keepalived ignores it", vs.label())
		}
		seen := map[string]bool{}
		for _, rs := range vs.RealServers {
			if seen[rs.Addr] {
				c.warnf(rs.Pos, "real_server %s is duplicated: keepalived removes the second", rs.Addr)
			}
			seen[rs.Addr] = true
			fwd := rs.Forward
			if fwd == "" {
				fwd = vs.Forward
			}
			if fwd != "" && fwd != "masq" && vs.Addr != "" {
				vp, rp := portOf(vs.Addr), portOf(rs.Addr)
				if rp != 0 && vp != rp {
					c.warnf(rs.Pos, "real_server %s: with %s the real server's port cannot differ from the virtual server's (%d); only NAT maps ports", rs.Addr, lbKind(fwd), vp)
				}
			}
		}
	}
}

func (c *Config) groupIsFwmarkOnly(name string) bool {
	g := c.Groups[name]
	if name == "" || g == nil {
		return false
	}
	for _, e := range g.Entries {
		if len(e.Addrs) > 0 {
			return false
		}
	}
	return true
}

func portOf(s string) uint16 {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return 0
	}
	return ap.Port()
}

func (vs VirtualServer) label() string {
	switch {
	case vs.Fwmark != 0:
		return fmt.Sprintf("fwmark %d", vs.Fwmark)
	case vs.Group != "":
		return "group " + vs.Group
	}
	return vs.Addr
}

// lbKind names a forwarding method as keepalived.conf writes it.
func lbKind(fwd string) string {
	switch fwd {
	case "masq":
		return "NAT"
	case "route":
		return "DR"
	case "tunnel":
		return "TUN"
	}
	return fwd
}

// RemovedOnFailure lists the real servers (RIP:RPORT) that keepalived
// takes out of the IPVS table when their health check fails: those with
// a checker and without inhibit_on_failure (which sets weight 0 instead).
func (c *Config) RemovedOnFailure() []string {
	var out []string
	for _, vs := range c.VirtualServers {
		vport := uint16(0)
		if ap, err := netip.ParseAddrPort(vs.Addr); err == nil {
			vport = ap.Port()
		}
		for _, rs := range vs.RealServers {
			if rs.Inhibit || len(rs.Checkers) == 0 {
				continue
			}
			addr := rs.Addr
			if ap, err := netip.ParseAddrPort(rs.Addr); err == nil && ap.Port() == 0 && vport != 0 {
				addr = netip.AddrPortFrom(ap.Addr(), vport).String()
			}
			out = append(out, addr)
		}
	}
	return out
}
