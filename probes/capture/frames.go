package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// The agent sends its captures packed (obs.Capture.Frames), not decoded:
// at fifty real servers a director's 8000 packets as JSON objects were 2.4
// MB, and encoding and decoding them was a fifth of the whole check's CPU.
// It keeps of each frame only the headers the decoder reads, so a record
// is about 80 bytes, and the controller decodes them with the same decoder
// (Unpack).
//
// A record: time (unix ns, int64), interface (uint16, an index into
// Interfaces), direction (1 byte, 1 = out), length (uint16), the bytes.
const recHeader = 8 + 2 + 1 + 2

// maxICMPKeep covers an ICMP header and the IPv4 header (with options)
// and transport header it quotes.
const maxICMPKeep = 8 + 60 + 60

// keep is how many bytes of the frame last decoded the controller needs:
// Ethernet, IPv4 and transport headers, what an ICMP error quotes, the
// payload only where a diagnosis reads it (FTP 227), ARP whole.
func (d *decoder) keep(data []byte) int {
	n := len(data)
	switch {
	case d.d.isARP:
		return min(n, 14+28)
	case !d.d.isIPv4:
		return min(n, 14)
	}
	l3 := 14 + int(d.ip.IHL)*4
	switch d.ip.Protocol {
	case layers.IPProtocolTCP:
		if !d.has(layers.LayerTypeTCP) {
			return min(n, l3)
		}
		k := l3 + int(d.tcp.DataOffset)*4
		if keepPayload(d.tcp.Payload) {
			k += min(len(d.tcp.Payload), maxPayload)
		}
		return min(n, k)
	case layers.IPProtocolUDP:
		return min(n, l3+8)
	case layers.IPProtocolICMPv4:
		return min(n, l3+maxICMPKeep)
	}
	return min(n, l3)
}

// appendFrame packs one record; ts is in unix nanoseconds.
func appendFrame(b []byte, ts int64, iface int, out bool, data []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(ts))
	b = binary.BigEndian.AppendUint16(b, uint16(iface))
	if out {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	return append(b, data...)
}

type frame struct {
	ts    int64
	iface int
	out   bool
	data  []byte
}

// eachFrame walks packed records; an error names the offset of a bad one.
func eachFrame(b []byte, fn func(frame) error) error {
	for off := 0; off < len(b); {
		if len(b)-off < recHeader {
			return fmt.Errorf("capture frames: record at byte %d cut short", off)
		}
		h := b[off : off+recHeader]
		f := frame{
			ts:    int64(binary.BigEndian.Uint64(h[0:8])),
			iface: int(binary.BigEndian.Uint16(h[8:10])),
			out:   h[10] == 1,
		}
		n := int(binary.BigEndian.Uint16(h[11:13]))
		off += recHeader
		if len(b)-off < n {
			return fmt.Errorf("capture frames: record at byte %d cut short", off-recHeader)
		}
		f.data = b[off : off+n]
		off += n
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// frameBuf holds a reader's records in chunks: one slice grown by
// append copies itself at every doubling, garbage the size of the capture
// so far each time.
type frameBuf struct{ chunks [][]byte }

const frameChunk = 32 << 10

func (fb *frameBuf) add(ts time.Time, iface int, out bool, data []byte) {
	need := recHeader + len(data)
	if n := len(fb.chunks); n == 0 || cap(fb.chunks[n-1])-len(fb.chunks[n-1]) < need {
		fb.chunks = append(fb.chunks, make([]byte, 0, max(frameChunk, need)))
	}
	last := len(fb.chunks) - 1
	fb.chunks[last] = appendFrame(fb.chunks[last], ts.UnixNano(), iface, out, data)
}

// size is the bytes of the records held.
func (fb *frameBuf) size() int {
	n := 0
	for _, c := range fb.chunks {
		n += len(c)
	}
	return n
}

// merge packs the readers' records into one buffer, sorted by time (each
// reader's own are in ring order, which can step back across CPUs).
func merge(readers []*reader) []byte {
	n := 0
	for _, r := range readers {
		n += r.n
	}
	all := make([]frame, 0, n)
	size := 0
	for _, r := range readers {
		for _, c := range r.frames.chunks {
			_ = eachFrame(c, func(f frame) error {
				all = append(all, f)
				return nil
			})
		}
		size += r.frames.size()
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].ts < all[j].ts })
	out := make([]byte, 0, size)
	for _, f := range all {
		out = appendFrame(out, f.ts, f.iface, f.out, f.data)
	}
	return out
}

// Unpack decodes a capture's Frames, as the agent sent them, into
// Packets, and drops the Frames.
func Unpack(c *obs.Capture) error {
	if len(c.Frames) == 0 {
		if c.Packets == nil {
			c.Packets = []obs.Packet{}
		}
		return nil
	}
	var frames []frame
	if err := eachFrame(c.Frames, func(f frame) error {
		if f.iface >= len(c.Interfaces) {
			return fmt.Errorf("capture frames: interface %d of %d", f.iface, len(c.Interfaces))
		}
		frames = append(frames, f)
		return nil
	}); err != nil {
		return err
	}
	pkts := make([]obs.Packet, len(c.Packets)+len(frames))
	copy(pkts, c.Packets)
	out := pkts[len(c.Packets):]
	// A director's capture is the last answer of a check at fifty real
	// servers, 8000 frames that the classifier waits for: decoded in
	// parts side by side, each with a decoder of its own.
	parts := min(runtime.GOMAXPROCS(0), len(frames)/unpackPart)
	if parts < 2 {
		parts = 1
	}
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for i := range parts {
		lo, hi := i*len(frames)/parts, (i+1)*len(frames)/parts
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := newDecoder()
			d.names = newNames()
			for j := lo; j < hi; j++ {
				f := frames[j]
				if _, ok := d.decode(f.data); !ok {
					errs[i] = errors.New("capture frames: a record is not an Ethernet frame")
					return
				}
				p := d.packet(time.Unix(0, f.ts), c.Interfaces[f.iface], nil)
				if f.out {
					p.Dir = "out"
				}
				out[j] = p
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	c.Packets, c.Frames = pkts, nil
	return nil
}

// unpackPart is the fewest frames worth a goroutine of their own.
const unpackPart = 1000
