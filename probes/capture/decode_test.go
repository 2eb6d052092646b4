package capture

import (
	"net"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

var (
	macA = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{2, 0, 0, 0, 0, 2}
)

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func tcpFrame(t testing.TB, payload string, syn, ack bool) []byte {
	eth := &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Id: 7, Protocol: layers.IPProtocolTCP,
		SrcIP: net.IP{203, 0, 113, 10}, DstIP: net.IP{203, 0, 113, 100}}
	tcp := &layers.TCP{SrcPort: 41000, DstPort: 21, Seq: 1000, SYN: syn, ACK: ack, PSH: payload != "", Window: 512}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth, ip, tcp, gopacket.Payload(payload))
}

// icmpErrFrame is a port unreachable (or redirect with gw) quoting a UDP packet.
func icmpErrFrame(t testing.TB, typ, code uint8, gw net.IP) []byte {
	iip := &layers.IPv4{Version: 4, TTL: 63, Id: 99, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IP{198, 18, 0, 1}, DstIP: net.IP{198, 18, 0, 2}}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 53}
	_ = udp.SetNetworkLayerForChecksum(iip)
	inner := serialize(t, iip, udp, gopacket.Payload("hello"))
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code)}
	if gw != nil {
		ic.Id = uint16(gw[0])<<8 | uint16(gw[1])
		ic.Seq = uint16(gw[2])<<8 | uint16(gw[3])
	}
	return serialize(t,
		&layers.Ethernet{SrcMAC: macB, DstMAC: macA, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4,
			SrcIP: net.IP{198, 18, 0, 2}, DstIP: net.IP{198, 18, 0, 1}},
		ic, gopacket.Payload(inner))
}

func TestDecodeTCP(t *testing.T) {
	d := newDecoder()
	now := time.Now()
	if _, ok := d.decode(tcpFrame(t, "", true, false)); !ok {
		t.Fatal("not decoded")
	}
	p := d.packet(now, "eth0", macA)
	if p.Dir != "out" || p.Proto != "tcp" || p.Flags != "S" || p.SrcPort != 41000 || p.DstPort != 21 ||
		p.Src != "203.0.113.10" || p.Seq != 1000 || p.IPID != 7 || p.TTL != 64 || p.Len != 0 {
		t.Fatalf("%+v", p)
	}
	d.decode(tcpFrame(t, "227 Entering Passive Mode (198,18,0,2,4,1)\r\n", false, true))
	p = d.packet(now, "eth0", macB)
	if p.Dir != "in" || p.Flags != "P." || p.Payload != "227 Entering Passive Mode (198,18,0,2,4,1)\r\n" || p.Len != 44 {
		t.Fatalf("%+v", p)
	}
	d.decode(tcpFrame(t, "GET / HTTP/1.0\r\n", false, true))
	if p = d.packet(now, "eth0", macB); p.Payload != "" || p.Len != 16 {
		t.Fatalf("payload kept for a non-227 packet: %+v", p)
	}
}

func TestDecodeICMP(t *testing.T) {
	d := newDecoder()
	d.decode(icmpErrFrame(t, 3, 3, nil))
	p := d.packet(time.Now(), "eth0", macA)
	if p.Proto != "icmp" || p.ICMPType != 3 || p.ICMPCode != 3 || p.Dir != "in" || p.Inner == nil {
		t.Fatalf("%+v", p)
	}
	in := p.Inner
	if in.Proto != "udp" || in.Src != "198.18.0.1" || in.Dst != "198.18.0.2" || in.SrcPort != 40000 || in.DstPort != 53 || in.IPID != 99 || in.Len != 5 {
		t.Fatalf("inner %+v", in)
	}
	d.decode(icmpErrFrame(t, 5, 1, net.IP{198, 18, 0, 254}))
	p = d.packet(time.Now(), "eth0", macA)
	if p.ICMPType != 5 || p.Gateway != "198.18.0.254" || p.Inner == nil || p.Inner.DstPort != 53 {
		t.Fatalf("redirect %+v", p)
	}
}

func TestTCPFlags(t *testing.T) {
	for _, c := range []struct {
		f                            string
		fin, syn, rst, psh, urg, ack bool
	}{
		{"S", false, true, false, false, false, false},
		{"S.", false, true, false, false, false, true},
		{".", false, false, false, false, false, true},
		{"P.", false, false, false, true, false, true},
		{"F.", true, false, false, false, false, true},
		{"R", false, false, true, false, false, false},
		{"R.", false, false, true, false, false, true},
		{"FP.", true, false, false, true, false, true},
	} {
		if got := tcpFlags(c.fin, c.syn, c.rst, c.psh, c.urg, c.ack); got != c.f {
			t.Errorf("got %q want %q", got, c.f)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	frames := [][]byte{tcpFrame(b, "", true, false), tcpFrame(b, "227 ok", false, true), icmpErrFrame(b, 3, 3, nil)}
	f, _ := NewFilter([]string{"203.0.113.10"}, true)
	d := newDecoder()
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dd, ok := d.decode(frames[i%len(frames)])
		if ok && f.Match(dd) {
			_ = d.packet(now, "eth0", macA)
		}
	}
}

func BenchmarkFilterVM(b *testing.B) {
	var hosts []string
	for i := 0; i < 8; i++ {
		hosts = append(hosts, net.IPv4(198, 18, 0, byte(i+1)).String())
	}
	f, _ := NewFilter(hosts, true)
	vm, _ := bpf.NewVM(f.Instructions())
	fr := ipFrame(6, "10.0.0.1", "10.0.0.2")
	for i := 0; i < b.N; i++ {
		_, _ = vm.Run(fr)
	}
}
