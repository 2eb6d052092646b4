package capture

import (
	"encoding/binary"
	"net"
	"testing"

	"golang.org/x/net/bpf"
)

// frame builds an Ethernet frame: IPv4 with proto, src, dst and 8 bytes
// of transport header, or ARP.
func ipFrame(proto byte, src, dst string) []byte {
	b := make([]byte, 14+20+8)
	copy(b[0:6], []byte{2, 0, 0, 0, 0, 2})
	copy(b[6:12], []byte{2, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(b[12:14], 0x0800)
	ip := b[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], 28)
	ip[8] = 64
	ip[9] = proto
	copy(ip[12:16], net.ParseIP(src).To4())
	copy(ip[16:20], net.ParseIP(dst).To4())
	return b
}

func arpFrame() []byte {
	b := make([]byte, 14+28)
	for i := 0; i < 6; i++ {
		b[i] = 0xff
	}
	copy(b[6:12], []byte{2, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(b[12:14], 0x0806)
	binary.BigEndian.PutUint16(b[14:16], 1)
	binary.BigEndian.PutUint16(b[16:18], 0x0800)
	b[18], b[19] = 6, 4
	binary.BigEndian.PutUint16(b[20:22], 1)
	return b
}

func ip6Frame() []byte {
	b := make([]byte, 14+40)
	binary.BigEndian.PutUint16(b[12:14], 0x86dd)
	return b
}

func TestFilterVM(t *testing.T) {
	hosts := []string{"203.0.113.10", "198.18.0.2"}
	cases := []struct {
		name  string
		frame []byte
		arp   bool
		want  bool
	}{
		{"tcp from host", ipFrame(6, "203.0.113.10", "203.0.113.100"), false, true},
		{"udp to host", ipFrame(17, "198.18.0.9", "198.18.0.2"), false, true},
		{"tcp between others", ipFrame(6, "198.18.0.9", "198.18.0.8"), false, false},
		{"icmp between others", ipFrame(1, "198.18.0.9", "198.18.0.8"), false, true},
		{"arp kept", arpFrame(), true, true},
		{"arp dropped", arpFrame(), false, false},
		{"ipv6 dropped", ip6Frame(), true, false},
		{"short frame", []byte{1, 2, 3}, true, false},
	}
	for _, c := range cases {
		f, err := NewFilter(hosts, c.arp)
		if err != nil {
			t.Fatal(err)
		}
		vm, err := bpf.NewVM(f.Instructions())
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		n, err := vm.Run(c.frame)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := n > 0; got != c.want {
			t.Errorf("%s: kernel filter kept=%v, want %v", c.name, got, c.want)
		}
		// The Go re-check agrees with the kernel filter.
		if len(c.frame) >= 14 {
			d, ok := newDecoder().decode(c.frame)
			if got := ok && f.Match(d); got != c.want {
				t.Errorf("%s: Go filter kept=%v, want %v", c.name, got, c.want)
			}
		}
		if _, err := f.Raw(); err != nil {
			t.Errorf("%s: assemble: %v", c.name, err)
		}
	}
}

func TestFilterNoHosts(t *testing.T) {
	f, _ := NewFilter(nil, false)
	vm, err := bpf.NewVM(f.Instructions())
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := vm.Run(ipFrame(6, "1.2.3.4", "5.6.7.8")); n != 0 {
		t.Error("tcp kept without hosts")
	}
	if n, _ := vm.Run(ipFrame(1, "1.2.3.4", "5.6.7.8")); n == 0 {
		t.Error("icmp dropped")
	}
}

func TestFilterManyHosts(t *testing.T) {
	var hosts []string
	for i := 0; i < maxHosts; i++ {
		hosts = append(hosts, net.IPv4(198, 18, byte(i/250), byte(i%250+1)).String())
	}
	f, err := NewFilter(hosts, true)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(f.Instructions())
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := vm.Run(ipFrame(6, "10.0.0.1", hosts[maxHosts-1])); n == 0 {
		t.Error("last host's packet dropped")
	}
	if n, _ := vm.Run(arpFrame()); n == 0 {
		t.Error("arp dropped")
	}
	if _, err := NewFilter(append(hosts, "198.19.0.1"), false); err == nil {
		t.Error("too many hosts accepted")
	}
	if _, err := NewFilter([]string{"::1"}, false); err == nil {
		t.Error("ipv6 host accepted")
	}
}
