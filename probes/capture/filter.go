package capture

import (
	"encoding/binary"
	"fmt"
	"net"

	"golang.org/x/net/bpf"
)

// Filter is what a capture keeps: IPv4 packets from or to one of Hosts,
// any ICMP, and ARP when ARP is set. The same filter runs in the kernel
// (as classic BPF, Program) and again in Go after decoding (Match).
type Filter struct {
	Hosts []net.IP // IPv4 only
	ARP   bool
}

// maxHosts keeps every jump of the program within BPF's 8-bit skips.
const maxHosts = 100

// Snaplen is what the kernel filter accepts of a frame.
const Snaplen = 65535

// NewFilter parses the hosts (IPv4 addresses; others are an error).
func NewFilter(hosts []string, arp bool) (Filter, error) {
	f := Filter{ARP: arp}
	if len(hosts) > maxHosts {
		return f, fmt.Errorf("too many hosts (%d, at most %d)", len(hosts), maxHosts)
	}
	for _, h := range hosts {
		ip := net.ParseIP(h).To4()
		if ip == nil {
			return f, fmt.Errorf("not an IPv4 address: %q", h)
		}
		f.Hosts = append(f.Hosts, ip)
	}
	return f, nil
}

// Frame offsets on Ethernet without VLAN tags (tags are stripped by the
// kernel into ancillary data before the filter runs).
const (
	offEtherType = 12
	offIPProto   = 14 + 9
	offIPSrc     = 14 + 12
	offIPDst     = 14 + 16
	etherIPv4    = 0x0800
	etherARP     = 0x0806
	protoICMP    = 1
)

// Instructions is the filter as typed classic BPF:
//
//	ldh [12]; jeq #0x800 ip; (jeq #0x806 accept;) ret #0
//	ip: ldb [23]; jeq #1 accept
//	    ld [26]; jeq #host1 accept; ...
//	    ld [30]; jeq #host1 accept; ...
//	    ret #0
//	accept: ret #Snaplen
func (f Filter) Instructions() []bpf.Instruction {
	var p prog
	p.add(bpf.LoadAbsolute{Off: offEtherType, Size: 2}, "", "")
	p.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherIPv4}, "ip", "")
	if f.ARP {
		p.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherARP}, "accept", "")
	}
	p.add(bpf.RetConstant{Val: 0}, "", "")
	p.label("ip")
	p.add(bpf.LoadAbsolute{Off: offIPProto, Size: 1}, "", "")
	p.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: protoICMP}, "accept", "")
	for _, off := range []uint32{offIPSrc, offIPDst} {
		if len(f.Hosts) == 0 {
			break
		}
		p.add(bpf.LoadAbsolute{Off: off, Size: 4}, "", "")
		for _, h := range f.Hosts {
			p.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: binary.BigEndian.Uint32(h)}, "accept", "")
		}
	}
	p.add(bpf.RetConstant{Val: 0}, "", "")
	p.label("accept")
	p.add(bpf.RetConstant{Val: Snaplen}, "", "")
	return p.resolve()
}

// Raw assembles the program for SetBPF.
func (f Filter) Raw() ([]bpf.RawInstruction, error) {
	return bpf.Assemble(f.Instructions())
}

// Match is the filter applied in Go to a decoded packet.
func (f Filter) Match(p *decoded) bool {
	switch {
	case p.isARP:
		return f.ARP
	case !p.isIPv4:
		return false
	case p.ipProto == protoICMP:
		return true
	}
	for _, h := range f.Hosts {
		if h.Equal(p.src) || h.Equal(p.dst) {
			return true
		}
	}
	return false
}

// prog is a tiny assembler with forward labels for conditional jumps.
type prog struct {
	ins    []bpf.Instruction
	jt, jf []string
	labels map[string]int
}

func (p *prog) add(i bpf.Instruction, jt, jf string) {
	p.ins = append(p.ins, i)
	p.jt = append(p.jt, jt)
	p.jf = append(p.jf, jf)
}

func (p *prog) label(name string) {
	if p.labels == nil {
		p.labels = map[string]int{}
	}
	p.labels[name] = len(p.ins)
}

func (p *prog) resolve() []bpf.Instruction {
	out := make([]bpf.Instruction, len(p.ins))
	for i, in := range p.ins {
		if j, ok := in.(bpf.JumpIf); ok {
			if p.jt[i] != "" {
				j.SkipTrue = uint8(p.labels[p.jt[i]] - i - 1)
			}
			if p.jf[i] != "" {
				j.SkipFalse = uint8(p.labels[p.jf[i]] - i - 1)
			}
			in = j
		}
		out[i] = in
	}
	return out
}
