package topology

import (
	"errors"
	"net/netip"
)

// ParseAddrPort reads an IPv4 "IP:PORT" the way the topology file does,
// or a bare IP that takes port def when def is non-zero. Interactive
// front ends (the wizard) validate answers with it as they are typed.
func ParseAddrPort(s string, def uint16) (netip.AddrPort, error) {
	return parseAddrPort(s, def)
}

// ParseAddr reads an IPv4 address, such as a client's address (CIP).
func ParseAddr(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, errors.New("missing")
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, errors.New("not an IPv4 address, e.g. 203.0.113.10")
	}
	if !a.Is4() {
		return netip.Addr{}, errors.New("only IPv4 is supported")
	}
	return a, nil
}
