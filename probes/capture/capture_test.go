package capture

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"

	"github.com/lvsdoctor/lvsdoctor/probes/internal/nstest"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
)

func start(t *testing.T, ns *nstest.NS, m *Manager, a obs.CaptureArgs) obs.CaptureStarted {
	t.Helper()
	var st obs.CaptureStarted
	ns.MustDo(t, func() error {
		var err error
		st, err = m.Start(context.Background(), a)
		return err
	})
	t.Cleanup(m.Close)
	return st
}

func stop(t *testing.T, m *Manager, id string) obs.Capture {
	t.Helper()
	c, err := m.Stop(context.Background(), obs.CaptureStopArgs{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	if err := Unpack(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

func show(p obs.Packet) string {
	s := fmt.Sprintf("%s %-3s %s %s:%d > %s:%d %s", p.Iface, p.Dir, p.Proto, p.Src, p.SrcPort, p.Dst, p.DstPort, p.Flags)
	if p.Proto == "icmp" {
		s += fmt.Sprintf(" %d/%d", p.ICMPType, p.ICMPCode)
	}
	if p.Inner != nil {
		s += " [" + show(*p.Inner) + "]"
	}
	return s
}

func find(c obs.Capture, want func(p obs.Packet) bool) *obs.Packet {
	for i := range c.Packets {
		if want(c.Packets[i]) {
			return &c.Packets[i]
		}
	}
	return nil
}

func TestCaptureHandshakeAndPortUnreachable(t *testing.T) {
	testenv.RequireRoot(t)
	p := nstest.NewPair(t)
	nstest.ServeTCP(t, p.B, p.BAddr+":8080", func(c net.Conn) {
		_, _ = c.Write([]byte("hello\n"))
		c.Close()
	})
	args := obs.CaptureArgs{Hosts: []string{p.AAddr}, ARP: true, Label: "a", PcapDir: t.TempDir()}
	ma, mb := NewManager(), NewManager()
	sa := start(t, p.A, ma, args)
	sb := start(t, p.B, mb, obs.CaptureArgs{Hosts: []string{p.AAddr}})
	if len(sa.Interfaces) != 1 || sa.Interfaces[0] != "eth0" {
		t.Fatalf("interfaces %v", sa.Interfaces)
	}
	var cport int
	p.A.MustDo(t, func() error {
		c, err := net.DialTimeout("tcp4", p.BAddr+":8080", time.Second)
		if err != nil {
			return err
		}
		cport = c.LocalAddr().(*net.TCPAddr).Port
		buf := make([]byte, 16)
		_, _ = c.Read(buf)
		c.Close()
		u, err := net.Dial("udp4", p.BAddr+":9999")
		if err != nil {
			return err
		}
		_, _ = u.Write([]byte("x"))
		_ = u.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, _ = u.Read(buf) // ECONNREFUSED from the port unreachable
		u.Close()
		return nil
	})
	ca := stop(t, ma, sa.ID)
	cb := stop(t, mb, sb.ID)
	for _, pk := range ca.Packets {
		t.Logf("A %s", show(pk))
	}
	for _, pk := range cb.Packets {
		t.Logf("B %s", show(pk))
	}
	if ca.Error != "" || cb.Error != "" {
		t.Fatalf("errors: %q %q", ca.Error, cb.Error)
	}
	tcp := func(c obs.Capture, dir, flags string, toServer bool) *obs.Packet {
		return find(c, func(pk obs.Packet) bool {
			if pk.Proto != "tcp" || pk.Dir != dir || pk.Flags != flags {
				return false
			}
			if toServer {
				return pk.SrcPort == cport && pk.DstPort == 8080
			}
			return pk.SrcPort == 8080 && pk.DstPort == cport
		})
	}
	checks := []struct {
		name string
		p    *obs.Packet
	}{
		{"A out S", tcp(ca, "out", "S", true)},
		{"A in S.", tcp(ca, "in", "S.", false)},
		{"A out .", tcp(ca, "out", ".", true)},
		{"B in S", tcp(cb, "in", "S", true)},
		{"B out S.", tcp(cb, "out", "S.", false)},
		{"B in .", tcp(cb, "in", ".", true)},
	}
	for _, c := range checks {
		if c.p == nil {
			t.Errorf("%s: not captured", c.name)
		}
	}
	if pk := tcp(ca, "out", "S", true); pk != nil && (pk.Src != p.AAddr || pk.Dst != p.BAddr || pk.TTL != 64) {
		t.Errorf("SYN fields: %+v", *pk)
	}
	pu := find(ca, func(pk obs.Packet) bool { return pk.Proto == "icmp" && pk.ICMPType == 3 && pk.ICMPCode == 3 })
	if pu == nil || pu.Dir != "in" || pu.Inner == nil || pu.Inner.Proto != "udp" || pu.Inner.DstPort != 9999 || pu.Inner.Src != p.AAddr {
		t.Errorf("port unreachable: %+v", pu)
	}
	for i := 1; i < len(ca.Packets); i++ {
		if ca.Packets[i].Time.Before(ca.Packets[i-1].Time) {
			t.Error("packets not sorted by time")
		}
	}
	// The pcapng file holds what the capture kept.
	if len(ca.PcapFiles) != 1 || filepath.Base(ca.PcapFiles[0]) != "a.pcapng" {
		t.Fatalf("pcap files %v", ca.PcapFiles)
	}
	f, err := os.Open(ca.PcapFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, _, err := r.ReadPacketData(); err != nil {
			break
		}
		n++
	}
	if n != len(ca.Packets) {
		t.Errorf("pcapng has %d packets, capture %d", n, len(ca.Packets))
	}
}

func TestCaptureFilterInKernel(t *testing.T) {
	testenv.RequireRoot(t)
	p := nstest.NewPair(t)
	m := NewManager()
	st := start(t, p.B, m, obs.CaptureArgs{Hosts: []string{"203.0.113.77"}})
	p.A.MustDo(t, func() error {
		u, err := net.Dial("udp4", p.BAddr+":9")
		if err != nil {
			return err
		}
		defer u.Close()
		for i := 0; i < 20; i++ {
			_, _ = u.Write([]byte("x"))
		}
		return nil
	})
	c := stop(t, m, st.ID)
	for _, pk := range c.Packets {
		if pk.Proto != "icmp" {
			t.Errorf("kept a packet of no listed host: %s", show(pk))
		}
	}
}

func TestCaptureMaxTime(t *testing.T) {
	testenv.RequireRoot(t)
	p := nstest.NewPair(t)
	m := NewManager()
	st := start(t, p.B, m, obs.CaptureArgs{Hosts: []string{p.AAddr}, MaxTime: 100 * time.Millisecond})
	time.Sleep(300 * time.Millisecond)
	sendUDP(t, p, "late")
	c := stop(t, m, st.ID)
	if len(c.Packets) != 0 {
		t.Errorf("captured after MaxTime: %v", c.Packets)
	}
	if _, err := m.Stop(context.Background(), obs.CaptureStopArgs{ID: st.ID}); err == nil {
		t.Error("second stop of the same id succeeded")
	}
}

func TestCaptureFlood(t *testing.T) {
	testenv.RequireRoot(t)
	p := nstest.NewPair(t)
	m := NewManager()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	st := start(t, p.B, m, obs.CaptureArgs{Hosts: []string{p.AAddr}, MaxPackets: 1000})
	const n = 50000
	p.A.MustDo(t, func() error {
		u, err := net.Dial("udp4", p.BAddr+":9")
		if err != nil {
			return err
		}
		defer u.Close()
		msg := []byte(strings.Repeat("f", 64))
		for i := 0; i < n; i++ {
			_, _ = u.Write(msg) // ICMP errors come back as ECONNREFUSED: ignore
		}
		return nil
	})
	c := stop(t, m, st.ID)
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("packets %d dropped %d truncated %v heap growth %d KiB (heap %d KiB)",
		len(c.Packets), c.Dropped, c.Truncated, growth/1024, after.HeapAlloc/1024)
	if len(c.Packets) > 1000 || c.Dropped == 0 || !c.Truncated {
		t.Errorf("bounds not applied: %d packets, %d dropped, truncated %v", len(c.Packets), c.Dropped, c.Truncated)
	}
	if growth > 16<<20 {
		t.Errorf("heap grew by %d MiB", growth>>20)
	}
}

// TestCaptureIdleReadersSleep: a reader whose ring is empty is parked until
// the kernel hands it a block, not woken on a timer (with a hundred readers
// at fifty real servers, timed wakeups of blocked threads cost more CPU
// than the probes); a packet still reaches it, and a stop wakes it at once.
func TestCaptureIdleReadersSleep(t *testing.T) {
	testenv.RequireRoot(t)
	p := nstest.NewPair(t)
	m := NewManager()
	st := start(t, p.B, m, obs.CaptureArgs{Hosts: []string{p.AAddr}})
	m.mu.Lock()
	s := m.caps[st.ID]
	m.mu.Unlock()
	for _, r := range s.readers {
		if r.w == nil {
			t.Fatalf("%s: no netpoller waiter: this afpacket version's socket could not be reached", r.iface)
		}
	}
	time.Sleep(300 * time.Millisecond)
	sendUDP(t, p, "wake")
	time.Sleep(100 * time.Millisecond)
	t0 := time.Now()
	c := stop(t, m, st.ID)
	took := time.Since(t0)
	for _, r := range s.readers {
		// One look when it started, one per block handed over (the packet,
		// its ICMP error), one when stopped.
		if r.idle > 5 {
			t.Errorf("%s: woke %d times in 400 ms with two packets", r.iface, r.idle)
		}
	}
	if find(c, func(p obs.Packet) bool { return p.Proto == "udp" && p.DstPort == 9 }) == nil {
		t.Errorf("the packet sent while the reader slept was not captured: %v", c.Packets)
	}
	if took > 200*time.Millisecond {
		t.Errorf("stop took %s", took)
	}
}

// sendUDP sends one datagram from A to B's discard port.
func sendUDP(t *testing.T, p *nstest.Pair, payload string) {
	t.Helper()
	p.A.MustDo(t, func() error {
		u, err := net.Dial("udp4", p.BAddr+":9")
		if err != nil {
			return err
		}
		defer u.Close()
		_, err = u.Write([]byte(payload))
		return err
	})
}

// TestCaptureSmallRing: a ring of half the default (a real server's, whose
// share of the test traffic is small) is one of the kernel's accepted
// shapes, and a real server's share of a check, about a thousand packets
// sent as fast as they go, arrives whole.
func TestCaptureSmallRing(t *testing.T) {
	testenv.RequireRoot(t)
	p := nstest.NewPair(t)
	m := NewManager()
	st := start(t, p.B, m, obs.CaptureArgs{Hosts: []string{p.AAddr}, Ring: DefaultRing / 2})
	// A write that reports the port unreachable of an earlier one sends
	// nothing: counted are the datagrams that left.
	n := 0
	p.A.MustDo(t, func() error {
		u, err := net.Dial("udp4", p.BAddr+":9")
		if err != nil {
			return err
		}
		defer u.Close()
		for range 1000 {
			if _, err := u.Write([]byte("share")); err == nil {
				n++
			}
		}
		return nil
	})
	time.Sleep(50 * time.Millisecond)
	c := stop(t, m, st.ID)
	got := 0
	for _, pk := range c.Packets {
		if pk.Proto == "udp" && pk.DstPort == 9 {
			got++
		}
	}
	if got != n || c.Dropped != 0 {
		t.Errorf("captured %d of %d datagrams, %d dropped", got, n, c.Dropped)
	}
}

func TestBlockSize(t *testing.T) {
	for _, c := range []struct{ ring, want int }{
		{0, BlockSize},
		{DefaultRing, BlockSize},
		{DefaultRing / 2, 8 << 10},
		{1, MinBlockSize},
		{1 << 30, MaxBlockSize},
	} {
		if got := blockSize(c.ring); got != c.want {
			t.Errorf("blockSize(%d) = %d, want %d", c.ring, got, c.want)
		}
	}
}

// openRing leaves the socket bound to every protocol on its interface,
// with the filter in place: it receives what the filter lets through, and
// only that.
func TestOpenRingBound(t *testing.T) {
	testenv.RequireRoot(t)
	p := nstest.NewPair(t)
	f, err := NewFilter([]string{p.AAddr}, false)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := f.Raw()
	if err != nil {
		t.Fatal(err)
	}
	p.B.MustDo(t, func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		tp, err := openRing(*ifc, 0, raw)
		if err != nil {
			return err
		}
		defer tp.Close()
		fd, err := packetFD(tp)
		if err != nil {
			return err
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			return err
		}
		ll, ok := sa.(*unix.SockaddrLinklayer)
		if !ok || ll.Protocol != ethPAll || ll.Ifindex != ifc.Index {
			t.Errorf("bound to %+v, want protocol %#x on ifindex %d", sa, ethPAll, ifc.Index)
		}
		return nil
	})
}
