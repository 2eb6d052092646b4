package classify

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
)

func init() { addRule(ruleRSRIPMissing) }

// missingRIPs lists the RIPs the topology gives h that are none of its
// addresses (nil when its addresses were not read).
func (v *view) missingRIPs(h *Host) []netip.Addr {
	f := h.Facts()
	if !h.Reached() || f == nil || f.Addrs == nil {
		return nil
	}
	have := map[netip.Addr]bool{}
	for _, a := range f.Addrs {
		if p, err := netip.ParsePrefix(a.Prefix); err == nil {
			have[p.Addr()] = true
		}
	}
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, s := range v.serviceOf(h) {
		if r, ok := v.realServerEntry(s, h); ok {
			a := r.AddrPort().Addr()
			if a.IsValid() && !have[a] && !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// The RIP is not configured on the real server (HOWTO Q.4 A.4). Its
// address list decides; on the wire the request arrives (the director, or
// a stale neighbour entry, still sends the RIP's frames to this host) and
// is forwarded: it leaves again unchanged (same IP id and sequence), or
// the host ARPs for the RIP itself and answers host unreachable, or, with
// forwarding off, it is dropped (Ip.InAddrErrors).
func ruleRSRIPMissing(v *view) []result.Finding {
	var out []result.Finding
	for _, h := range v.rs {
		miss := v.missingRIPs(h)
		if len(miss) == 0 {
			continue
		}
		f := h.Facts()
		for _, rip := range miss {
			fd := newFinding("rs-rip-missing", h.Label)
			var addrs []string
			for _, a := range f.Addrs {
				if a.Link != "lo" {
					addrs = append(addrs, a.Prefix+" dev "+a.Link)
				}
			}
			iface, pfx := ifaceFacing(h, rip)
			fd.Interface = iface
			fd.Summary = fmt.Sprintf("%s does not have the RIP %s: the director sends it requests it does not accept as its own", h.Label, rip)
			fd.Evidence = append(fd.Evidence, fmt.Sprintf("ip -4 addr on %s: %s — no %s", h.Label, strings.Join(addrs, ", "), rip))
			fd.Evidence = append(fd.Evidence, v.ripMissingWire(h, rip)...)
			fw := sysctl(h, "net.ipv4.ip_forward")
			if n, ok := counterDelta(h, "Ip.ForwDatagrams"); ok && n > 0 {
				fd.Evidence = append(fd.Evidence, fmt.Sprintf("Ip.ForwDatagrams on %s rose by %d during the test (net.ipv4.ip_forward = %s): it forwards what was meant for %s", h.Label, n, fw, rip))
			} else if n, ok := counterDelta(h, "Ip.InAddrErrors"); ok && n > 0 {
				fd.Evidence = append(fd.Evidence, fmt.Sprintf("Ip.InAddrErrors on %s rose by %d during the test: packets for an address it does not have", h.Label, n))
			}
			if rg := routeGet(h, v.cip.String(), rip.String(), ""); rg != nil && rg.Error != "" {
				fd.Evidence = append(fd.Evidence, fmt.Sprintf("ip route get %s from %s → %s (the source is not local)", v.cip, rip, fmtRouteGet(rg)))
			}
			if d := v.director; d != nil {
				if df := d.Facts(); df != nil {
					for _, n := range df.Neigh {
						if n.IP == rip.String() && n.State != "" {
							fd.Evidence = append(fd.Evidence, fmt.Sprintf("%s: neighbour %s dev %s lladdr %s %s", d.Label, n.IP, n.Link, n.MAC, n.State))
						}
					}
				}
			}
			bits := 32
			if dp, ok := v.directorPrefixFor(rip); ok {
				bits = dp.Bits()
			} else if pfx.IsValid() {
				bits = pfx.Bits()
			}
			dev := iface
			if dev == "" {
				dev = "IFACE"
			}
			fd.Remedy = append(fd.Remedy, fmt.Sprintf("ip addr add %s/%d dev %s   # on %s", rip, bits, dev, h.Label))
			if fw == "1" {
				fd.Remedy = append(fd.Remedy, fmt.Sprintf("sysctl -w net.ipv4.ip_forward=0   # on %s: a real server need not forward", h.Label))
			}
			fd.Remedy = append(fd.Remedy, fmt.Sprintf("or point the director at the address %s has now (ipvsadm -e/-a ... -r NEWADDR, or the nft DNAT map), and ip neigh del %s on the director if pinned", h.Label, rip))
			for _, s := range v.serviceOf(h) {
				if r, ok := v.realServerEntry(s, h); ok && r.AddrPort().Addr() == rip {
					fd.Address = r.AddrPort().String()
					break
				}
			}
			out = append(out, fd)
		}
	}
	return out
}

// directorPrefixFor is the director's connected prefix holding a.
func (v *view) directorPrefixFor(a netip.Addr) (netip.Prefix, bool) {
	if v.director == nil {
		return netip.Prefix{}, false
	}
	_, p := ifaceFacing(v.director, a)
	return p, p.IsValid()
}

// ripMissingWire tells what h did with packets for rip: forwarded them
// unchanged, ARPed for rip, answered host unreachable.
func (v *view) ripMissingWire(h *Host, rip netip.Addr) []string {
	if h.Capture == nil {
		return nil
	}
	var ev []string
	r := rip.String()
	type key struct {
		id  uint16
		seq uint32
		src string
		sp  int
	}
	ins := map[key]bool{}
	arrived, again, arps, unreach := 0, 0, 0, 0
	var sampleIn, sampleAgain, sampleARP, sampleUnreach string
	for _, p := range h.Capture.Packets {
		switch {
		case p.Dir == "in" && p.Dst == r && (p.Proto == "tcp" || p.Proto == "udp"):
			arrived++
			ins[key{p.IPID, p.Seq, p.Src, p.SrcPort}] = true
			if sampleIn == "" {
				sampleIn = fmt.Sprintf("%s %s in: %s", h.Label, p.Iface, fmtPacket(p))
			}
		case p.Dir == "out" && p.Dst == r && (p.Proto == "tcp" || p.Proto == "udp") && ins[key{p.IPID, p.Seq, p.Src, p.SrcPort}]:
			again++
			if sampleAgain == "" {
				sampleAgain = fmt.Sprintf("%s %s out: %s (IP id %d, ttl %d): the same packet leaves again", h.Label, p.Iface, fmtPacket(p), p.IPID, p.TTL)
			}
		case p.Dir == "out" && p.Proto == "arp" && p.ARPOp == "request" && p.Dst == r:
			arps++
			if sampleARP == "" {
				sampleARP = fmt.Sprintf("%s %s out: %s", h.Label, p.Iface, fmtPacket(p))
			}
		case p.Dir == "out" && p.Proto == "icmp" && p.ICMPType == 3 && p.Inner != nil && p.Inner.Dst == r:
			unreach++
			if sampleUnreach == "" {
				sampleUnreach = fmt.Sprintf("%s %s out: %s", h.Label, p.Iface, fmtPacket(p))
			}
		}
	}
	if arrived > 0 {
		ev = append(ev, fmt.Sprintf("%d packets for %s arrived at %s, e.g. %s", arrived, r, h.Label, sampleIn))
	}
	if again > 0 {
		ev = append(ev, fmt.Sprintf("%d of them left %s again unchanged: %s", again, h.Label, sampleAgain))
	}
	if arps > 0 {
		ev = append(ev, fmt.Sprintf("%s asks for %s itself: %d ARP requests, e.g. %s", h.Label, r, arps, sampleARP))
	}
	if unreach > 0 {
		ev = append(ev, fmt.Sprintf("%d ICMP errors for them: %s", unreach, sampleUnreach))
	}
	return ev
}
