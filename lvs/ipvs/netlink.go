package ipvs

import (
	"errors"
	"fmt"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
	"io"
	"net/netip"
	"os"
	"strconv"
	"syscall"

	cfipvs "github.com/cloudflare/ipvs"
)

// ErrNoIPVS is returned (wrapped) when the kernel has no IPVS: the ip_vs
// module is not loaded, or not built.
var ErrNoIPVS = errors.New("IPVS is not available in this kernel (netlink family IPVS not found): modprobe ip_vs")

// ReadNetlink reads the IPVS table of the calling thread's network
// namespace over generic netlink. On a kernel without IPVS the error
// wraps ErrNoIPVS.
func ReadNetlink() (*Table, error) {
	c, err := cfipvs.New()
	if err != nil {
		if noFamily(err) {
			return nil, fmt.Errorf("%w: %v", ErrNoIPVS, err)
		}
		return nil, fmt.Errorf("ipvs netlink: %w", err)
	}
	if cl, ok := c.(io.Closer); ok {
		defer cl.Close()
	}
	return ReadClient(c)
}

// ReadTimeouts reads `ipvsadm -L --timeout` over netlink: the one part of
// the table that /proc does not show.
func ReadTimeouts() (*obs.IPVSTimeouts, error) {
	c, err := cfipvs.New()
	if err != nil {
		return nil, fmt.Errorf("ipvs netlink: %w", err)
	}
	if cl, ok := c.(io.Closer); ok {
		defer cl.Close()
	}
	cfg, err := c.Config()
	if err != nil {
		return nil, fmt.Errorf("ipvs netlink: timeouts: %w", err)
	}
	return &obs.IPVSTimeouts{TCP: cfg.TCPTimeout, TCPFin: cfg.TCPFinTimeout, UDP: cfg.UDPTimeout}, nil
}

// noFamily tells the "no such generic netlink family" answer:
// ENOENT from CTRL_CMD_GETFAMILY.
func noFamily(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOENT)
}

// ReadClient reads the table through an IPVS client (tests pass a fake).
func ReadClient(c cfipvs.Client) (*Table, error) {
	t := &Table{Services: []Service{}}
	if info, err := c.Info(); err == nil {
		t.Version = fmt.Sprintf("%d.%d.%d", info.Version[0], info.Version[1], info.Version[2])
		t.ConnTableSize = int(info.ConnectionTableSize)
	} else if noFamily(err) {
		return nil, fmt.Errorf("%w: %v", ErrNoIPVS, err)
	}
	if cfg, err := c.Config(); err == nil {
		t.Timeouts = &obs.IPVSTimeouts{TCP: cfg.TCPTimeout, TCPFin: cfg.TCPFinTimeout, UDP: cfg.UDPTimeout}
	}
	svcs, err := c.Services()
	if err != nil && t.Version != "" && errors.Is(err, os.ErrNotExist) {
		// cloudflare/ipvs answers an empty dump with ErrNotExist; Info
		// answered, so the family exists and the table is empty.
		svcs, err = nil, nil
	}
	if err != nil {
		if noFamily(err) {
			return nil, fmt.Errorf("%w: %v", ErrNoIPVS, err)
		}
		return nil, fmt.Errorf("ipvs netlink: list services: %w", err)
	}
	for _, se := range svcs {
		s := fromNLService(se.Service)
		s.Stats = fromNLStats(se.Stats64, se.Stats)
		dests, err := c.Destinations(se.Service)
		if err != nil {
			return nil, fmt.Errorf("ipvs netlink: real servers of %s: %w", s, err)
		}
		for _, de := range dests {
			d := fromNLDest(de)
			s.Dests = append(s.Dests, d)
		}
		t.Services = append(t.Services, s)
	}
	return t, nil
}

func fromNLService(in cfipvs.Service) Service {
	s := Service{Scheduler: in.Scheduler, Dests: []Dest{}, IPv6: in.Family == cfipvs.INET6}
	if in.FWMark != 0 {
		s.Proto, s.Mark = "fwmark", in.FWMark
	} else {
		switch in.Protocol {
		case cfipvs.TCP:
			s.Proto = "tcp"
		case cfipvs.UDP:
			s.Proto = "udp"
		case cfipvs.SCTP:
			s.Proto = "sctp"
		default:
			s.Proto = "proto-" + strconv.Itoa(int(in.Protocol))
		}
		s.Addr = netip.AddrPortFrom(in.Address.Unmap(), in.Port).String()
	}
	if in.Flags&cfipvs.ServiceOnePacket != 0 {
		s.Flags = append(s.Flags, "ops")
	}
	s.Flags = append(s.Flags, schedFlagNames(in.Scheduler, uint32(in.Flags>>3)&7)...)
	if in.Flags&cfipvs.ServicePersistent != 0 {
		s.Persistent, s.Timeout = true, in.Timeout
		if in.Netmask.IsValid() {
			if s.IPv6 {
				s.Netmask = "/" + strconv.Itoa(in.Netmask.Bits())
			} else {
				s.Netmask = in.Netmask.String()
			}
		} else {
			s.Netmask = defaultMask(s.IPv6)
		}
	}
	return s
}

func fromNLDest(in cfipvs.DestinationExtended) Dest {
	d := Dest{
		Addr:       netip.AddrPortFrom(in.Address.Unmap(), in.Port).String(),
		Weight:     int(in.Weight),
		ActiveC:    int(in.ActiveConnections),
		InactiveC:  int(in.InactiveConnections),
		PersistC:   int(in.PersistentConnections),
		UThreshold: in.UpperThreshold,
		LThreshold: in.LowerThreshold,
		Stats:      fromNLStats(in.Stats64, in.Stats),
	}
	switch in.FwdMethod {
	case cfipvs.Masquerade:
		d.Forward = "masq"
	case cfipvs.Local:
		d.Forward = "local"
	case cfipvs.Tunnel:
		d.Forward = "tunnel"
		d.Tunnel = map[cfipvs.TunnelType]string{cfipvs.IPIP: "ipip", cfipvs.GUE: "gue", cfipvs.GRE: "gre"}[in.TunnelType]
	case cfipvs.DirectRoute:
		d.Forward = "route"
	case cfipvs.Bypass:
		d.Forward = "bypass"
	}
	return d
}

// fromNLStats prefers the 64-bit counters (kernels since 4.1) and falls
// back to the 32-bit ones.
func fromNLStats(s64, s32 cfipvs.Stats) *Stats {
	s := s64
	if s == (cfipvs.Stats{}) {
		s = s32
	}
	return &Stats{Conns: s.Connections, InPkts: s.IncomingPackets, OutPkts: s.OutgoingPackets,
		InBytes: s.IncomingBytes, OutBytes: s.OutgoingBytes, CPS: s.ConnectionRate,
		InPPS: s.IncomingPacketRate, OutPPS: s.OutgoingPacketRate, InBPS: s.IncomingByteRate, OutBPS: s.OutgoingByteRate}
}
