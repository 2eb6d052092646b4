// Package capture records, on every interface of a host at once (loopback
// and non-Ethernet links excepted), the packets to or from a set of hosts,
// any ICMP and optionally ARP, with gopacket's afpacket (TPACKET_V3 rings
// kept small) and a classic BPF filter, and decodes them into obs.Packet.
//
// Start returns once every socket is bound and filtered, so traffic can
// start right after; Stop drains the rings briefly and returns the packets
// sorted by time. MaxPackets per interface and MaxTime bound what a flood
// can cost.
package capture

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/afpacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/lvsdoctor/lvsdoctor/probes/internal/nsthread"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// Ring and timing parameters. A socket's ring is BlockSize × NumBlocks
// (DefaultRing, 512 KiB), not afpacket's 64 MiB default. The kernel hands
// over a block BlockTimeout after its first packet however full it is, so
// on a quiet interface every block holds a packet or two and the ring
// lasts NumBlocks × BlockTimeout of a reader that is not scheduled: many
// small blocks, not a few large ones (with 8, fifty real servers' captures
// in one agent lost packets while it was busy). A smaller ring
// (obs.CaptureArgs.Ring) keeps the blocks and shrinks each, down to
// MinBlockSize: two of the largest frames.
const (
	FrameSize         = 4096
	BlockSize         = 16 << 10
	MinBlockSize      = 2 * FrameSize
	MaxBlockSize      = 64 << 10
	NumBlocks         = 32
	DefaultRing       = BlockSize * NumBlocks
	BlockTimeout      = 10 * time.Millisecond // a partly filled block is handed over after this
	PollTimeout       = 20 * time.Millisecond // how long a stop drains a ring that keeps filling
	DefaultMaxPackets = 2000
	DefaultMaxTime    = 30 * time.Second
)

// blockSize is the block that makes a ring of about ring bytes out of
// NumBlocks blocks: whole pages, within [MinBlockSize, MaxBlockSize].
func blockSize(ring int) int {
	if ring <= 0 {
		return BlockSize
	}
	page := os.Getpagesize()
	b := ring / NumBlocks / page * page
	return min(max(b, MinBlockSize), MaxBlockSize)
}

// Manager holds the running captures of one agent.
type Manager struct {
	mu   sync.Mutex
	caps map[string]*session
}

// NewManager returns an empty Manager.
func NewManager() *Manager { return &Manager{caps: map[string]*session{}} }

type session struct {
	id      string
	args    obs.CaptureArgs
	filter  Filter
	readers []*reader
	wg      sync.WaitGroup
	stopAt  atomic.Int64 // unix nanoseconds of the stop request, 0: running
	timer   *time.Timer
	pcap    *pcapFile
	errs    []string
	done    sync.Once
	result  obs.Capture
}

type reader struct {
	s         *session
	iface     string
	mac       net.HardwareAddr
	tp        *afpacket.TPacket
	w         *waiter // nil: the ring is looked at every BlockTimeout instead
	idle      int     // times the ring was found empty
	pcapID    int
	index     int      // in the capture's Interfaces
	kdrops    int      // lost by the ring, from PACKET_STATISTICS
	frames    frameBuf // packed records (frames.go)
	n         int
	dropped   int
	truncated bool
	err       error
}

type pcapFile struct {
	mu   sync.Mutex
	f    *os.File
	w    *pcapgo.NgWriter
	path string
	err  error
}

// Start opens the capture on every Ethernet interface but lo. Sockets are
// opened on the calling goroutine (the namespace of its thread).
func (m *Manager) Start(ctx context.Context, a obs.CaptureArgs) (obs.CaptureStarted, error) {
	if a.MaxPackets <= 0 {
		a.MaxPackets = DefaultMaxPackets
	}
	if a.MaxTime <= 0 {
		a.MaxTime = DefaultMaxTime
	}
	f, err := NewFilter(a.Hosts, a.ARP)
	if err != nil {
		return obs.CaptureStarted{}, err
	}
	raw, err := f.Raw()
	if err != nil {
		return obs.CaptureStarted{}, fmt.Errorf("assemble filter: %w", err)
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return obs.CaptureStarted{}, err
	}
	s := &session{id: newID(), args: a, filter: f}
	var cand []net.Interface
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback != 0 || len(ifc.HardwareAddr) != 6 {
			continue // lo, and links without Ethernet framing (tunl0, ipip, wg...)
		}
		cand = append(cand, ifc)
	}
	// Each socket waits out an RCU grace period in the kernel, setting up
	// its ring: opened one after another, a director's interfaces took
	// tens of milliseconds each, opened at once they share the wait.
	readers, errs := make([]*reader, len(cand)), make([]string, len(cand))
	err = nsthread.Each(len(cand), func(i int) {
		ifc := cand[i]
		if ctx.Err() != nil {
			return
		}
		tp, err := openRing(ifc, a.Ring, raw)
		if err != nil {
			errs[i] = fmt.Sprintf("%s: %v", ifc.Name, err)
			return
		}
		w, _ := newWaiter(tp)
		readers[i] = &reader{s: s, iface: ifc.Name, mac: ifc.HardwareAddr, tp: tp, w: w}
	})
	for i := range cand {
		if readers[i] != nil {
			readers[i].index = len(s.readers)
			s.readers = append(s.readers, readers[i])
		}
		if errs[i] != "" {
			s.errs = append(s.errs, errs[i])
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		s.closeAll()
		return obs.CaptureStarted{}, err
	}
	if len(s.readers) == 0 {
		msg := "no interface to capture on"
		if len(s.errs) > 0 {
			msg += ": " + strings.Join(s.errs, "; ")
		}
		return obs.CaptureStarted{}, errors.New(msg)
	}
	if a.PcapDir != "" {
		if err := s.openPcap(); err != nil {
			s.closeAll()
			return obs.CaptureStarted{}, err
		}
	}
	started := obs.CaptureStarted{ID: s.id}
	for _, r := range s.readers {
		started.Interfaces = append(started.Interfaces, r.iface)
		s.wg.Add(1)
		go r.run()
	}
	s.timer = time.AfterFunc(a.MaxTime, s.requestStop)
	m.mu.Lock()
	m.caps[s.id] = s
	m.mu.Unlock()
	return started, nil
}

// Stop ends a capture and returns what it saw, sorted by time.
func (m *Manager) Stop(ctx context.Context, a obs.CaptureStopArgs) (obs.Capture, error) {
	m.mu.Lock()
	s := m.caps[a.ID]
	delete(m.caps, a.ID)
	m.mu.Unlock()
	if s == nil {
		return obs.Capture{}, fmt.Errorf("no capture %q", a.ID)
	}
	return s.finish(), nil
}

// Close stops every capture and releases its sockets.
func (m *Manager) Close() {
	m.mu.Lock()
	caps := m.caps
	m.caps = map[string]*session{}
	m.mu.Unlock()
	for _, s := range caps {
		s.finish()
	}
}

func newID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "cap-" + hex.EncodeToString(b[:])
}

// openRing opens ifc's ring with the filter in place. The socket is
// made for no protocol, so that it receives nothing and afpacket's bind
// and ring setup need not take it off the network first, each waiting
// out an RCU grace period to do so (the ring's own wait stays); bound to
// every protocol once filtered, it starts receiving: 8 ms a socket
// instead of 25 here, and no packet before the filter.
func openRing(ifc net.Interface, ring int, filter []bpf.RawInstruction) (*afpacket.TPacket, error) {
	opts := []any{
		afpacket.OptInterface(ifc.Name),
		afpacket.OptFrameSize(FrameSize),
		afpacket.OptBlockSize(blockSize(ring)),
		afpacket.OptNumBlocks(NumBlocks),
		afpacket.OptBlockTimeout(BlockTimeout),
		afpacket.OptPollTimeout(0), // an empty ring is waited for by the waiter
	}
	tp, err := afpacket.NewTPacket(append(opts, afpacket.OptProtocol(0))...)
	if err != nil {
		return nil, err
	}
	fd, err := packetFD(tp)
	if err != nil {
		// Not this afpacket: its own way, receiving from the start.
		tp.Close()
		if tp, err = afpacket.NewTPacket(opts...); err != nil {
			return nil, err
		}
		fd = -1
	}
	if err := tp.SetBPF(filter); err != nil {
		tp.Close()
		return nil, fmt.Errorf("set filter: %w", err)
	}
	_ = tp.InitSocketStats()
	if fd >= 0 {
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: ethPAll, Ifindex: ifc.Index}); err != nil {
			tp.Close()
			return nil, fmt.Errorf("bind: %w", err)
		}
	}
	return tp, nil
}

// ethPAll is ETH_P_ALL in network byte order, as sockaddr_ll wants it.
var ethPAll = func() uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], unix.ETH_P_ALL)
	return binary.NativeEndian.Uint16(b[:])
}()

func (s *session) requestStop() {
	s.stopAt.CompareAndSwap(0, time.Now().UnixNano())
	for _, r := range s.readers {
		if r.w != nil {
			r.w.stop()
		}
	}
}

// stopping reports whether a reader should end: a stop was asked and
// either the ring is empty (idle) or the drain time is over.
func (s *session) stopping(idle bool) bool {
	at := s.stopAt.Load()
	if at == 0 {
		return false
	}
	return idle || time.Since(time.Unix(0, at)) > PollTimeout
}

func (s *session) closeAll() {
	for _, r := range s.readers {
		if r.w != nil {
			r.w.close()
		}
		r.tp.Close()
	}
}

func (s *session) finish() obs.Capture {
	s.done.Do(func() {
		// Let the last partly filled blocks be handed over before asking.
		time.Sleep(2 * BlockTimeout)
		s.requestStop()
		s.wg.Wait()
		s.timer.Stop()
		c := obs.Capture{Packets: []obs.Packet{}}
		for _, r := range s.readers {
			c.Interfaces = append(c.Interfaces, r.iface)
			c.Dropped += r.kdrops
			c.Dropped += r.dropped
			c.Truncated = c.Truncated || r.truncated
			if r.err != nil {
				s.errs = append(s.errs, fmt.Sprintf("%s: %v", r.iface, r.err))
			}
		}
		c.Frames = merge(s.readers)
		for _, r := range s.readers {
			r.frames = frameBuf{}
		}
		if s.pcap != nil {
			if err := s.pcap.close(); err != nil {
				s.errs = append(s.errs, "pcap: "+err.Error())
			}
			c.PcapFiles = []string{s.pcap.path}
		}
		c.Error = strings.Join(s.errs, "; ")
		s.result = c
	})
	return s.result
}

func (r *reader) run() {
	defer r.s.wg.Done()
	defer func() {
		// Release the ring as soon as this reader ends (MaxTime included).
		if _, v3, err := r.tp.SocketStats(); err == nil {
			r.kdrops = int(v3.Drops())
		}
		// Closing a packet socket waits out an RCU grace period, and
		// nothing is read from it any more: the answer need not wait.
		if r.w != nil {
			r.w.close()
		}
		go r.tp.Close()
	}()
	dec := newDecoder()
	max := r.s.args.MaxPackets
	for {
		data, ci, err := r.tp.ZeroCopyReadPacketData()
		if errors.Is(err, afpacket.ErrTimeout) {
			if r.s.stopping(true) {
				return
			}
			r.idle++
			if r.w == nil {
				time.Sleep(BlockTimeout)
			} else if err := r.w.wait(); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				r.err = err
				return
			}
			continue
		}
		if err != nil {
			r.err = err
			return
		}
		if r.s.stopping(false) {
			return
		}
		d, ok := dec.decode(data)
		if !ok || !r.s.filter.Match(d) {
			continue
		}
		if r.n >= max {
			r.dropped++
			r.truncated = true
			continue
		}
		r.n++
		out := len(r.mac) > 0 && bytes.Equal(dec.eth.SrcMAC, r.mac)
		r.frames.add(ci.Timestamp, r.index, out, data[:dec.keep(data)])
		if r.s.pcap != nil {
			ci.InterfaceIndex = r.pcapID
			r.s.pcap.write(ci, data)
		}
	}
}

func (s *session) openPcap() error {
	label := s.args.Label
	if label == "" {
		label = "capture"
	}
	label = strings.NewReplacer("/", "_", "\\", "_").Replace(label)
	path := filepath.Join(s.args.PcapDir, label+".pcapng")
	if err := os.MkdirAll(s.args.PcapDir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	ng := func(r *reader) pcapgo.NgInterface {
		return pcapgo.NgInterface{Name: r.iface, LinkType: layers.LinkTypeEthernet, SnapLength: Snaplen}
	}
	w, err := pcapgo.NewNgWriterInterface(f, ng(s.readers[0]), pcapgo.NgWriterOptions{})
	if err != nil {
		f.Close()
		return err
	}
	for i, r := range s.readers {
		if i == 0 {
			continue
		}
		if r.pcapID, err = w.AddInterface(ng(r)); err != nil {
			f.Close()
			return err
		}
	}
	s.pcap = &pcapFile{f: f, w: w, path: path}
	return nil
}

func (p *pcapFile) write(ci gopacket.CaptureInfo, data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		if len(data) > ci.CaptureLength {
			data = data[:ci.CaptureLength]
		}
		p.err = p.w.WritePacket(ci, data)
	}
}

func (p *pcapFile) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	ferr := p.w.Flush()
	cerr := p.f.Close()
	return errors.Join(p.err, ferr, cerr)
}
