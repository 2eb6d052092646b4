package classify

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// view indexes an Input for the rules: who is who, which interface faces
// whom, which packets belong to which test connection. Everything here is
// derived from observations, never from how a lab was built.
type view struct {
	in       *Input
	client   *Host
	director *Host
	rs       []*Host // in topology order, each once
	cip      netip.Addr
	// conns attributes each test connection (by its client address) to the
	// real server the director sent it to, from the captures.
	attrib map[connKey]*Host
	// replies are the sources of the replies toward the client on the
	// director's wire (repliesSeen), nil until first asked.
	replies map[netip.AddrPort]bool
	// silent memoises rsSilent, asked by several rules of every real
	// server.
	silent map[*Host][]rsSilentReqs
}

func newView(in *Input) *view {
	v := &view{in: in, attrib: map[connKey]*Host{}}
	seen := map[string]bool{}
	labels := make([]string, 0, len(in.Hosts))
	for l := range in.Hosts {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, l := range labels {
		h := in.Hosts[l]
		switch h.Role {
		case RoleClient:
			v.client = h
		case RoleDirector:
			v.director = h
		}
	}
	for _, s := range in.Topology.Services {
		for _, r := range s.RealServers {
			if h := in.Hosts[r.Label()]; h != nil && !seen[h.Label] {
				seen[h.Label] = true
				v.rs = append(v.rs, h)
			}
		}
	}
	v.cip = in.Topology.ClientAddr()
	if !v.cip.IsValid() && v.client != nil {
		v.cip, _ = netip.ParseAddr(v.client.Address)
	}
	v.attribute()
	return v
}

// sysctl reads a sysctl from the host's latest facts ("" when unknown).
func sysctl(h *Host, key string) string {
	f := h.Facts()
	if f == nil || f.Sysctls == nil {
		return ""
	}
	return strings.TrimSpace(f.Sysctls[key])
}

// rpFilter is the effective rp_filter of an interface: the kernel uses the
// maximum of conf/all and conf/IFACE. -1 when unknown.
func rpFilter(h *Host, iface string) int {
	a, err1 := strconv.Atoi(sysctl(h, "net.ipv4.conf.all.rp_filter"))
	i, err2 := strconv.Atoi(sysctl(h, "net.ipv4.conf."+iface+".rp_filter"))
	if err1 != nil || err2 != nil {
		return -1
	}
	return max(a, i)
}

// counterDelta is After-Before of a kernel counter, and whether both exist.
func counterDelta(h *Host, key string) (int64, bool) {
	if h == nil || h.Before == nil || h.After == nil {
		return 0, false
	}
	b, ok1 := h.Before.Counters[key]
	a, ok2 := h.After.Counters[key]
	return a - b, ok1 && ok2
}

// prefixes lists the host's addresses with their interfaces.
func prefixes(h *Host) []obs.Addr {
	if f := h.Facts(); f != nil {
		return f.Addrs
	}
	return nil
}

// ifaceFacing is the host's interface whose connected subnet holds a.
func ifaceFacing(h *Host, a netip.Addr) (string, netip.Prefix) {
	for _, ad := range prefixes(h) {
		p, err := netip.ParsePrefix(ad.Prefix)
		if err != nil || p.Bits() == 32 {
			continue
		}
		if p.Masked().Contains(a) {
			return ad.Link, p
		}
	}
	return "", netip.Prefix{}
}

// ifaceHolding is the interface that has a as one of its addresses.
func ifaceHolding(h *Host, a netip.Addr) string {
	for _, ad := range prefixes(h) {
		if p, err := netip.ParsePrefix(ad.Prefix); err == nil && p.Addr() == a {
			return ad.Link
		}
	}
	return ""
}

// dipFor is the director's address on a real server's subnet: where the
// real server's replies must go.
func (v *view) dipFor(rip netip.Addr) (netip.Addr, string) {
	if v.director == nil {
		return netip.Addr{}, ""
	}
	iface, p := ifaceFacing(v.director, rip)
	if iface == "" {
		return netip.Addr{}, ""
	}
	return p.Addr(), iface
}

// rip is the real server's address (the first RIP of it in the topology).
func (v *view) rip(h *Host) netip.Addr {
	a, _ := netip.ParseAddr(h.Address)
	return a
}

func (v *view) linkMAC(h *Host, iface string) string {
	if f := h.Facts(); f != nil {
		for _, l := range f.Links {
			if l.Name == iface {
				return l.MAC
			}
		}
	}
	return ""
}

// ingress is the director interface the client's requests arrive on: seen
// in the capture where there is one, else the interface on the client's
// subnet, else the one holding a VIP.
func (v *view) ingress() string {
	d := v.director
	if d == nil {
		return ""
	}
	if d.Capture != nil && v.cip.IsValid() {
		for _, p := range d.Capture.Packets {
			if p.Dir == "in" && p.Src == v.cip.String() && (p.Proto == "tcp" || p.Proto == "udp") {
				for _, s := range v.in.Topology.Services {
					if p.Dst == s.VIPPort().Addr().String() {
						return p.Iface
					}
				}
			}
		}
	}
	if v.cip.IsValid() {
		if i, _ := ifaceFacing(d, v.cip); i != "" {
			return i
		}
	}
	for _, s := range v.in.Topology.Services {
		if i := ifaceHolding(d, s.VIPPort().Addr()); i != "" && i != "lo" {
			return i
		}
	}
	return ""
}

// TraceStep is Q.2 for a real server whose traceroute to the client came
// back: is its first hop the DIP (the director's address on the real
// server's subnet)? A first hop that did not answer while the real
// server's ping got through is read from its `ip route get CIP from RIP`
// instead: a director that forwards the real server's traffic but is out
// of ICMP budget for it (a burst of six, one more a second) answers no
// traceroute, which says nothing of the way back. Without the ping, the
// silence is the director's and Q.2 fails. A client that is the director
// itself is reached in one hop.
func TraceStep(director, rs *Host, rip, cip netip.Addr) (result.Status, string) {
	t := rs.Trace
	var dip netip.Addr
	if director != nil {
		if _, p := ifaceFacing(director, rip); p.IsValid() {
			dip = p.Addr()
		}
	}
	if t.Error != "" {
		return result.Fail, "traceroute: " + t.Error
	}
	if len(t.Hops) == 0 || t.Hops[0].Addr == "" {
		pinged := rs.Ping != nil && rs.Ping.Received > 0
		if rg := routeGet(rs, cip.String(), rip.String(), ""); pinged && rg != nil && rg.Error == "" && dip.IsValid() && rg.Gateway == dip.String() {
			return result.Pass, fmt.Sprintf("via %s (DIP) by ip route get; the traceroute's first hop did not answer (the director's ICMP rate limit, or a firewall)", dip)
		}
		return result.Fail, fmt.Sprintf("traceroute from %s: no answer from the first hop", rip)
	}
	first := t.Hops[0].Addr
	switch {
	case first == cip.String() && director != nil && ifaceHolding(director, cip) != "":
		return result.Pass, fmt.Sprintf("reaches %s, the director itself (client-on-director), in 1 hop", cip)
	case dip.IsValid() && first != dip.String():
		return result.Fail, fmt.Sprintf("first hop %s, not the DIP %s", first, dip)
	case t.Reached:
		return result.Pass, fmt.Sprintf("via %s (DIP), reaches %s in %d hops", first, cip, len(t.Hops))
	}
	return result.Pass, fmt.Sprintf("via %s (DIP); the client's last-hop answer did not come (ICMP rate limit or a firewall)", first)
}

// routeGet finds a route lookup the check made on the host.
func routeGet(h *Host, dst, src, iif string) *obs.RouteGet {
	for i := range h.RouteGets {
		r := &h.RouteGets[i]
		if r.Dst == dst && r.Src == src && r.Iif == iif {
			return r
		}
	}
	return nil
}

func (v *view) serviceOf(rs *Host) []topology.Service {
	var out []topology.Service
	for _, s := range v.in.Topology.Services {
		for _, r := range s.RealServers {
			if r.Label() == rs.Label {
				out = append(out, s)
			}
		}
	}
	return out
}

func (v *view) realServerEntry(s topology.Service, h *Host) (topology.RealServer, bool) {
	for _, r := range s.RealServers {
		if r.Label() == h.Label {
			return r, true
		}
	}
	return topology.RealServer{}, false
}

// attribute maps each test connection to the real server it was sent to,
// from the director's capture (CIP:CPORT -> RIP:RPORT leaving it) or, where
// the director saw nothing, from the real servers' captures.
func (v *view) attribute() {
	for _, sr := range v.in.Services {
		for _, c := range sr.Conns {
			if h := v.attributeConn(sr.Service, c); h != nil {
				v.attrib[connKey{c.Proto, c.Local}] = h
			}
		}
	}
}

func (v *view) attributeConn(s topology.Service, c obs.Conn) *Host {
	caddr, err := netip.ParseAddrPort(c.Local)
	if err != nil {
		return nil
	}
	key := flowKey{c.Proto, caddr.Addr().String(), int(caddr.Port())}
	match := func(p *obs.Packet) *Host {
		if p.Proto != key.proto || p.SrcPort != key.port || p.Src != key.addr {
			return nil
		}
		for _, r := range s.RealServers {
			ap := r.AddrPort()
			if p.DstPort == int(ap.Port()) && p.Dst == ap.Addr().String() {
				return v.in.Hosts[r.Label()]
			}
		}
		return nil
	}
	if d := v.director; d != nil && d.Capture != nil {
		for _, p := range d.flowIndex()[key] {
			if p.Dir == "out" {
				if h := match(p); h != nil {
					return h
				}
			}
		}
	}
	for _, h := range v.rs {
		if h.Capture == nil {
			continue
		}
		for _, p := range h.flowIndex()[key] {
			if p.Dir == "in" && match(p) != nil {
				return h
			}
		}
	}
	return nil
}

// connKey names a test connection: protocol and client end.
type connKey struct{ proto, local string }

// rsOf is the real server the director sent c to, nil if unknown.
func (v *view) rsOf(c obs.Conn) *Host { return v.attrib[connKey{c.Proto, c.Local}] }

// connsTo lists the test connections the director sent to h.
func (v *view) connsTo(h *Host) []obs.Conn {
	var out []obs.Conn
	for _, sr := range v.in.Services {
		for _, c := range sr.Conns {
			if v.rsOf(c) == h {
				out = append(out, c)
			}
		}
	}
	return out
}

// flowPackets are the packets on host h of the test connection c: the
// client's side (to the VIP), the real server's side (to any RIP), and ICMP
// errors quoting either.
func flowPackets(h *Host, c obs.Conn) []*obs.Packet {
	if h == nil || h.Capture == nil {
		return nil
	}
	ca, err := netip.ParseAddrPort(c.Local)
	if err != nil {
		return nil
	}
	return h.flowIndex()[flowKey{c.Proto, ca.Addr().String(), int(ca.Port())}]
}

// flowKey names a test connection by its client end.
type flowKey struct {
	proto string
	addr  string
	port  int
}

// flowIndex groups the host's captured packets by the client end of the
// connection they belong to (an ICMP error by the one it quotes), once:
// rules ask for every connection's packets on every host, and scanning the
// capture each time costs quadratic time on a cluster of fifty.
func (h *Host) flowIndex() map[flowKey][]*obs.Packet {
	if h.flows != nil {
		return h.flows
	}
	h.flows = map[flowKey][]*obs.Packet{}
	add := func(k flowKey, p *obs.Packet) { h.flows[k] = append(h.flows[k], p) }
	for i := range h.Capture.Packets {
		p := &h.Capture.Packets[i]
		q := p
		if p.Proto == "icmp" {
			if p.Inner == nil {
				continue
			}
			q = p.Inner
		}
		if q.Proto != "tcp" && q.Proto != "udp" {
			continue
		}
		// Both ends are candidates: which one is the client is known only
		// to the caller. A packet between two candidate ends (src and dst
		// the same key) is added once.
		ks := flowKey{q.Proto, q.Src, q.SrcPort}
		kd := flowKey{q.Proto, q.Dst, q.DstPort}
		add(ks, p)
		if kd != ks {
			add(kd, p)
		}
	}
	return h.flows
}

func fmtPacket(p obs.Packet) string {
	switch p.Proto {
	case "tcp":
		return fmt.Sprintf("%s:%d > %s:%d %s", p.Src, p.SrcPort, p.Dst, p.DstPort, p.Flags)
	case "udp":
		return fmt.Sprintf("%s:%d > %s:%d udp %d", p.Src, p.SrcPort, p.Dst, p.DstPort, p.Len)
	case "icmp":
		s := fmt.Sprintf("%s > %s icmp %s", p.Src, p.Dst, icmpName(p.ICMPType, p.ICMPCode))
		if p.Inner != nil {
			s += fmt.Sprintf(" (for %s:%d > %s:%d)", p.Inner.Src, p.Inner.SrcPort, p.Inner.Dst, p.Inner.DstPort)
		}
		return s
	case "arp":
		return fmt.Sprintf("arp %s who-has %s tell %s", p.ARPOp, p.Dst, p.Src)
	}
	return fmt.Sprintf("%s > %s %s", p.Src, p.Dst, p.Proto)
}

func icmpName(t, c int) string {
	switch t {
	case 0:
		return "echo reply"
	case 8:
		return "echo request"
	case 11:
		return "time exceeded"
	case 5:
		return "redirect"
	case 3:
		switch c {
		case 0:
			return "net unreachable"
		case 1:
			return "host unreachable"
		case 3:
			return "port unreachable"
		case 10, 13:
			return "admin prohibited"
		}
		return fmt.Sprintf("unreachable code %d", c)
	}
	return fmt.Sprintf("type %d code %d", t, c)
}

// fmtRouteGet renders a route lookup the way `ip route get` prints it.
func fmtRouteGet(rg *obs.RouteGet) string {
	if rg.Error != "" {
		return "RTNETLINK answers: " + rg.Error
	}
	var b strings.Builder
	if rg.Type != "" && rg.Type != "unicast" {
		b.WriteString(rg.Type)
	}
	if rg.Gateway != "" {
		b.WriteString(" via " + rg.Gateway)
	}
	if rg.Dev != "" {
		b.WriteString(" dev " + rg.Dev)
	}
	if rg.PrefSrc != "" {
		b.WriteString(" src " + rg.PrefSrc)
	}
	if rg.Flags != "" {
		b.WriteString(" <" + rg.Flags + ">")
	}
	return strings.TrimSpace(b.String())
}
