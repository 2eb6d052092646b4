package capture

import (
	"bytes"
	"encoding/binary"
	"net"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// decoder decodes frames without allocating per layer; one per reader
// goroutine (it is not safe for concurrent use).
type decoder struct {
	eth     layers.Ethernet
	ip      layers.IPv4
	arp     layers.ARP
	tcp     layers.TCP
	udp     layers.UDP
	icmp    layers.ICMPv4
	payload gopacket.Payload
	parser  *gopacket.DecodingLayerParser
	layers  []gopacket.LayerType
	d       decoded
	names   *names // nil: every packet gets its own strings
}

// names shares the strings that thousands of packets repeat (a handful
// of MACs and addresses): fewer allocations, less for the GC.
type names struct {
	macs map[[6]byte]string
	ips  map[[4]byte]string
}

func newNames() *names {
	return &names{macs: map[[6]byte]string{}, ips: map[[4]byte]string{}}
}

func (d *decoder) mac(b net.HardwareAddr) string {
	if d.names == nil || len(b) != 6 {
		return b.String()
	}
	k := [6]byte(b)
	s, ok := d.names.macs[k]
	if !ok {
		s = b.String()
		d.names.macs[k] = s
	}
	return s
}

func (d *decoder) ip4(b []byte) string {
	if d.names == nil || len(b) != 4 {
		return net.IP(b).String()
	}
	k := [4]byte(b)
	s, ok := d.names.ips[k]
	if !ok {
		s = net.IP(b).String()
		d.names.ips[k] = s
	}
	return s
}

// maxPayload bounds the payload kept of a packet whose text a diagnosis
// reads (keepPayload).
const maxPayload = 256

// keepPayload: FTP's 227 reply names the data connection's address, which
// a director without the FTP helper leaves untranslated.
func keepPayload(pl []byte) bool { return bytes.HasPrefix(pl, []byte("227 ")) }

// decoded is what the Go-side filter looks at.
type decoded struct {
	isIPv4, isARP bool
	ipProto       uint8
	src, dst      net.IP
}

func newDecoder() *decoder {
	d := &decoder{}
	d.parser = gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet,
		&d.eth, &d.ip, &d.arp, &d.tcp, &d.udp, &d.icmp, &d.payload)
	d.parser.IgnoreUnsupported = true
	d.layers = make([]gopacket.LayerType, 0, 8)
	return d
}

// decode parses a frame; ok is false for what is not Ethernet. The
// returned decoded is valid until the next call.
func (d *decoder) decode(data []byte) (*decoded, bool) {
	d.layers = d.layers[:0]
	_ = d.parser.DecodeLayers(data, &d.layers) // truncated frames keep what decoded
	d.d = decoded{}
	if len(d.layers) == 0 || d.layers[0] != layers.LayerTypeEthernet {
		return &d.d, false
	}
	for _, l := range d.layers {
		switch l {
		case layers.LayerTypeIPv4:
			d.d.isIPv4 = true
			d.d.ipProto = uint8(d.ip.Protocol)
			d.d.src, d.d.dst = d.ip.SrcIP, d.ip.DstIP
		case layers.LayerTypeARP:
			d.d.isARP = true
		}
	}
	return &d.d, true
}

func (d *decoder) has(t gopacket.LayerType) bool {
	for _, l := range d.layers {
		if l == t {
			return true
		}
	}
	return false
}

// packet fills an obs.Packet from the last decode.
func (d *decoder) packet(ts time.Time, iface string, ifMAC net.HardwareAddr) obs.Packet {
	p := obs.Packet{Time: ts, Iface: iface, Dir: "in", Proto: "other"}
	p.SrcMAC = d.mac(d.eth.SrcMAC)
	p.DstMAC = d.mac(d.eth.DstMAC)
	if len(ifMAC) > 0 && bytes.Equal(d.eth.SrcMAC, ifMAC) {
		p.Dir = "out"
	}
	if d.d.isARP {
		p.Proto = "arp"
		p.Src = d.ip4(d.arp.SourceProtAddress)
		p.Dst = d.ip4(d.arp.DstProtAddress)
		switch d.arp.Operation {
		case layers.ARPRequest:
			p.ARPOp = "request"
		case layers.ARPReply:
			p.ARPOp = "reply"
		}
		return p
	}
	if !d.d.isIPv4 {
		return p
	}
	p.Src = d.ip4(d.ip.SrcIP)
	p.Dst = d.ip4(d.ip.DstIP)
	p.IPID = d.ip.Id
	p.TTL = d.ip.TTL
	l4len := int(d.ip.Length) - int(d.ip.IHL)*4 // from the header: GSO frames may be truncated
	switch d.ip.Protocol {
	case layers.IPProtocolTCP:
		p.Proto = "tcp"
		if d.has(layers.LayerTypeTCP) {
			p.SrcPort, p.DstPort = int(d.tcp.SrcPort), int(d.tcp.DstPort)
			p.Seq = d.tcp.Seq
			p.Flags = tcpFlags(d.tcp.FIN, d.tcp.SYN, d.tcp.RST, d.tcp.PSH, d.tcp.URG, d.tcp.ACK)
			p.Len = max(0, l4len-int(d.tcp.DataOffset)*4)
			if pl := d.tcp.Payload; keepPayload(pl) {
				p.Payload = string(pl[:min(len(pl), maxPayload)])
			}
		}
	case layers.IPProtocolUDP:
		p.Proto = "udp"
		if d.has(layers.LayerTypeUDP) {
			p.SrcPort, p.DstPort = int(d.udp.SrcPort), int(d.udp.DstPort)
			p.Len = max(0, int(d.udp.Length)-8)
		}
	case layers.IPProtocolICMPv4:
		p.Proto = "icmp"
		if d.has(layers.LayerTypeICMPv4) {
			p.ICMPType = int(d.icmp.TypeCode.Type())
			p.ICMPCode = int(d.icmp.TypeCode.Code())
			p.Len = max(0, l4len-8)
			switch p.ICMPType {
			case layers.ICMPv4TypeRedirect:
				var gw [4]byte
				binary.BigEndian.PutUint16(gw[0:2], d.icmp.Id)
				binary.BigEndian.PutUint16(gw[2:4], d.icmp.Seq)
				p.Gateway = d.ip4(gw[:])
				p.Inner = quoted(d.icmp.Payload)
			case layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4TypeTimeExceeded,
				layers.ICMPv4TypeParameterProblem, layers.ICMPv4TypeSourceQuench:
				p.Inner = quoted(d.icmp.Payload)
			}
		}
	default:
		p.Len = max(0, l4len)
	}
	return p
}

// tcpFlags renders flags the way tcpdump does: F S R P U, then "." for ACK.
func tcpFlags(fin, syn, rst, psh, urg, ack bool) string {
	var b [6]byte
	n := 0
	for _, f := range []struct {
		on bool
		c  byte
	}{{fin, 'F'}, {syn, 'S'}, {rst, 'R'}, {psh, 'P'}, {urg, 'U'}, {ack, '.'}} {
		if f.on {
			b[n] = f.c
			n++
		}
	}
	if n == 0 {
		return "none"
	}
	return string(b[:n])
}

// quoted decodes the IPv4 header and the first bytes of TCP/UDP that an
// ICMP error quotes (often only 8 bytes of the transport header).
func quoted(q []byte) *obs.Packet {
	if len(q) < 20 || q[0]>>4 != 4 {
		return nil
	}
	ihl := int(q[0]&0x0f) * 4
	if ihl < 20 || len(q) < ihl {
		return nil
	}
	p := &obs.Packet{
		Proto: "other",
		Src:   net.IP(q[12:16]).String(),
		Dst:   net.IP(q[16:20]).String(),
		IPID:  binary.BigEndian.Uint16(q[4:6]),
		TTL:   q[8],
	}
	total := int(binary.BigEndian.Uint16(q[2:4]))
	t := q[ihl:]
	switch q[9] {
	case 6:
		p.Proto = "tcp"
		if len(t) >= 8 {
			p.SrcPort = int(binary.BigEndian.Uint16(t[0:2]))
			p.DstPort = int(binary.BigEndian.Uint16(t[2:4]))
			p.Seq = binary.BigEndian.Uint32(t[4:8])
		}
		if len(t) >= 14 {
			f := t[13]
			p.Flags = tcpFlags(f&0x01 != 0, f&0x02 != 0, f&0x04 != 0, f&0x08 != 0, f&0x20 != 0, f&0x10 != 0)
			p.Len = max(0, total-ihl-int(t[12]>>4)*4)
		}
	case 17:
		p.Proto = "udp"
		if len(t) >= 8 {
			p.SrcPort = int(binary.BigEndian.Uint16(t[0:2]))
			p.DstPort = int(binary.BigEndian.Uint16(t[2:4]))
			p.Len = max(0, int(binary.BigEndian.Uint16(t[4:6]))-8)
		}
	case 1:
		p.Proto = "icmp"
		if len(t) >= 2 {
			p.ICMPType, p.ICMPCode = int(t[0]), int(t[1])
		}
	}
	return p
}
