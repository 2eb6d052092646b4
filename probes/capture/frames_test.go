package capture

import (
	"encoding/json"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	sjson "github.com/segmentio/encoding/json"

	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

func udpFrame(t testing.TB, payload string) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Id: 3, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IP{203, 0, 113, 10}, DstIP: net.IP{203, 0, 113, 100}}
	udp := &layers.UDP{SrcPort: 40001, DstPort: 53}
	_ = udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, &layers.Ethernet{SrcMAC: macB, DstMAC: macA, EthernetType: layers.EthernetTypeIPv4}, ip, udp, gopacket.Payload(payload))
}

// samples are frames of every kind the decoder reads, with payloads that
// the packed form must drop (HTTP) or keep (FTP 227).
func samples(t testing.TB) [][]byte {
	return [][]byte{
		tcpFrame(t, "", true, false),
		tcpFrame(t, "GET / HTTP/1.0\r\nHost: "+strings.Repeat("x", 600)+"\r\n\r\n", false, true),
		tcpFrame(t, "227 Entering Passive Mode (198,18,0,2,4,1)\r\n"+strings.Repeat(" ", 400), false, true),
		udpFrame(t, strings.Repeat("u", 300)),
		icmpErrFrame(t, 3, 3, nil),
		icmpErrFrame(t, 5, 1, net.IP{198, 18, 0, 254}),
		append(arpFrame(), make([]byte, 18)...), // padded to 60 bytes, as on a wire
	}
}

// The packed form must decode to exactly what the whole frame decodes to:
// what the agent leaves out is what no field reads.
func TestFramesRoundTrip(t *testing.T) {
	d := newDecoder()
	var buf []byte
	var want []obs.Packet
	t0 := time.Unix(1764337000, 300727465)
	ifaces := []string{"eth0", "eth1"}
	for i, fr := range samples(t) {
		if _, ok := d.decode(fr); !ok {
			t.Fatalf("sample %d not decoded", i)
		}
		ts := t0.Add(time.Duration(i) * time.Microsecond)
		iface := i % 2
		p := d.packet(ts, ifaces[iface], macA) // macA sends: out
		want = append(want, p)
		k := d.keep(fr)
		if k > 14+60+maxICMPKeep && !strings.HasPrefix(p.Payload, "227 ") {
			t.Errorf("sample %d (%s): keeps %d of %d bytes", i, p.Proto, k, len(fr))
		}
		buf = appendFrame(buf, ts.UnixNano(), iface, p.Dir == "out", fr[:k])
	}
	c := obs.Capture{Interfaces: ifaces, Frames: buf}
	if err := Unpack(&c); err != nil {
		t.Fatal(err)
	}
	if c.Frames != nil {
		t.Error("Frames left after Unpack")
	}
	if len(c.Packets) != len(want) {
		t.Fatalf("got %d packets, want %d", len(c.Packets), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(c.Packets[i], want[i]) {
			t.Errorf("packet %d:\n got %+v\nwant %+v", i, c.Packets[i], want[i])
		}
	}
	if got := c.Packets[2].Payload; len(got) != maxPayload || !strings.HasPrefix(got, "227 ") {
		t.Errorf("FTP 227 payload: %d bytes %.20q", len(got), got)
	}
}

func TestFramesMergeSorted(t *testing.T) {
	d := newDecoder()
	fr := tcpFrame(t, "", true, false)
	d.decode(fr)
	t0 := time.Unix(1764337000, 0)
	a := &reader{index: 0}
	b := &reader{index: 1}
	for _, ms := range []int{1, 4, 3} { // a ring can step back across CPUs
		a.frames.add(t0.Add(time.Duration(ms)*time.Millisecond), a.index, false, fr)
	}
	for _, ms := range []int{0, 2, 5} {
		b.frames.add(t0.Add(time.Duration(ms)*time.Millisecond), b.index, true, fr)
	}
	c := obs.Capture{Interfaces: []string{"a", "b"}, Frames: merge([]*reader{a, b})}
	if err := Unpack(&c); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c.Packets {
		got = append(got, p.Iface+p.Dir+p.Time.Sub(t0).String())
	}
	want := []string{"bout0s", "ain1ms", "bout2ms", "ain3ms", "ain4ms", "bout5ms"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestUnpackBad(t *testing.T) {
	fr := tcpFrame(t, "", true, false)
	good := appendFrame(nil, time.Now().UnixNano(), 0, false, fr)
	for name, c := range map[string]obs.Capture{
		"cut in the header": {Interfaces: []string{"eth0"}, Frames: good[:5]},
		"cut in the frame":  {Interfaces: []string{"eth0"}, Frames: good[:len(good)-3]},
		"unknown interface": {Interfaces: []string{}, Frames: good},
		"not ethernet":      {Interfaces: []string{"eth0"}, Frames: appendFrame(nil, time.Now().UnixNano(), 0, false, []byte{1, 2})},
	} {
		if err := Unpack(&c); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	c := obs.Capture{}
	if err := Unpack(&c); err != nil || c.Packets == nil {
		t.Errorf("empty capture: %v, packets %v", err, c.Packets)
	}
}

// BenchmarkCaptureWire is the agent-to-controller cost of a capture of
// 8000 packets (a director's, fifty real servers): as JSON objects (the
// old wire form) and packed.
func BenchmarkCaptureWire(b *testing.B) {
	d := newDecoder()
	fr := samples(b)
	var buf []byte
	var pkts []obs.Packet
	t0 := time.Now()
	for i := range 8000 {
		f := fr[[]int{0, 1, 3}[i%3]] // what test connections are made of
		d.decode(f)
		ts := t0.Add(time.Duration(i) * time.Microsecond)
		pkts = append(pkts, d.packet(ts, "eth0", macA))
		buf = appendFrame(buf, ts.UnixNano(), 0, true, f[:d.keep(f)])
	}
	// As the check does: encoded by the agent (encoding/json), decoded by
	// the controller (segmentio's decoder, as agent.Client does) and
	// unpacked.
	wire := func(c obs.Capture) func(*testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				out, _ := json.Marshal(c)
				var back obs.Capture
				if err := sjson.Unmarshal(out, &back); err != nil {
					b.Fatal(err)
				}
				if err := Unpack(&back); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(len(out)), "wire-bytes")
			}
		}
	}
	b.Run("json", wire(obs.Capture{Interfaces: []string{"eth0"}, Packets: pkts}))
	b.Run("packed", wire(obs.Capture{Interfaces: []string{"eth0"}, Frames: buf}))
}

// Records cross the buffer's chunks, and one larger than a chunk gets
// its own, without a record lost or split.
func TestFrameBufChunks(t *testing.T) {
	d := newDecoder()
	fr := tcpFrame(t, "", true, false)
	d.decode(fr)
	big := append(append([]byte(nil), fr...), make([]byte, frameChunk+100)...)
	r := &reader{}
	t0 := time.Unix(1764337000, 0)
	const n = 2000
	for i := range n {
		data := fr
		if i == n/2 {
			data = big
		}
		r.frames.add(t0.Add(time.Duration(i)*time.Microsecond), 0, false, data)
	}
	if len(r.frames.chunks) < 3 {
		t.Fatalf("%d chunks for %d bytes", len(r.frames.chunks), r.frames.size())
	}
	c := obs.Capture{Interfaces: []string{"eth0"}, Frames: merge([]*reader{r})}
	if len(c.Frames) != r.frames.size() {
		t.Errorf("merged %d bytes, buffered %d", len(c.Frames), r.frames.size())
	}
	if err := Unpack(&c); err != nil {
		t.Fatal(err)
	}
	if len(c.Packets) != n {
		t.Fatalf("%d packets, want %d", len(c.Packets), n)
	}
	for i, p := range c.Packets {
		if want := t0.Add(time.Duration(i) * time.Microsecond); !p.Time.Equal(want) {
			t.Fatalf("packet %d at %v, want %v", i, p.Time, want)
		}
	}
}

// TestUnpackInParts: a capture big enough to be decoded in parts side by
// side decodes to what one decoder makes of it, in its order.
func TestUnpackInParts(t *testing.T) {
	d := newDecoder()
	var buf []byte
	var want []obs.Packet
	t0 := time.Unix(1764337000, 0)
	ifaces := []string{"eth0", "eth1"}
	fr := samples(t)
	for i := range 4*unpackPart + 7 {
		f := fr[i%len(fr)]
		d.decode(f)
		ts := t0.Add(time.Duration(i) * time.Microsecond)
		want = append(want, d.packet(ts, ifaces[i%2], macA))
		buf = appendFrame(buf, ts.UnixNano(), i%2, want[i].Dir == "out", f[:d.keep(f)])
	}
	c := obs.Capture{Interfaces: ifaces, Frames: buf}
	if err := Unpack(&c); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Packets, want) {
		t.Fatalf("decoded in parts, %d packets differ from one decoder's %d", len(c.Packets), len(want))
	}
}
