package transport

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// payload is this lvsdoctor, hashed once per run, however many hosts it
// goes to. The binary itself is never held in memory, which keeps the
// controller in its budget.
type payload struct {
	path string
	hash string
	size int64
}

var (
	payloadOnce sync.Once
	payloadVal  payload
	payloadErr  error
)

func loadPayload() (payload, error) {
	payloadOnce.Do(func() {
		bin, err := AgentBinary()
		if err != nil {
			payloadErr = err
			return
		}
		payloadVal, payloadErr = hashSelf(bin)
	})
	return payloadVal, payloadErr
}

// hashSelf is the binary at bin as a payload, its hash read from the
// cache where this very file was hashed before (selfHashFile).
func hashSelf(bin string) (payload, error) {
	f, err := os.Open(bin)
	if err != nil {
		return payload{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return payload{}, err
	}
	memo := selfHashFile(st)
	if b, err := os.ReadFile(memo); err == nil && isSHA256Hex(string(b)) {
		return payload{path: bin, hash: string(b), size: st.Size()}, nil
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return payload{}, err
	}
	p := payload{path: bin, hash: hex.EncodeToString(h.Sum(nil)), size: n}
	rememberSelfHash(memo, p.hash)
	return p, nil
}

// selfHashFile is where the hash of the binary st describes is kept
// between runs: every run over SSH needs it (a host's cached copy is named
// after it), and hashing 17 MB took some 20 ms of the controller's CPU
// each time. The name holds what any change to the binary changes (its
// inode, size, and modification and change times, the latter set by the
// kernel alone); "" without a cache directory.
func selfHashFile(st os.FileInfo) string {
	dir := cacheDir()
	sys, ok := st.Sys().(*syscall.Stat_t)
	if dir == "" || !ok {
		return ""
	}
	return filepath.Join(dir, fmt.Sprintf("self-%d-%d-%d-%d.%09d-%d.%09d", sys.Dev, sys.Ino, st.Size(),
		sys.Mtim.Sec, sys.Mtim.Nsec, sys.Ctim.Sec, sys.Ctim.Nsec))
}

// rememberSelfHash writes the binary's hash to file (selfHashFile), under
// another name first, and removes what other builds left.
func rememberSelfHash(file, hash string) {
	if file == "" {
		return
	}
	dir := filepath.Dir(file)
	if os.MkdirAll(dir, 0o700) != nil {
		return
	}
	tmp, err := os.CreateTemp(dir, ".self-*.part")
	if err != nil {
		return
	}
	_, werr := tmp.WriteString(hash)
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), file) != nil {
		os.Remove(tmp.Name())
		return
	}
	old, _ := filepath.Glob(filepath.Join(dir, "self-*"))
	for _, o := range old {
		if o != file {
			os.Remove(o)
		}
	}
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// A packing is a compression that hosts can unpack with a command of
// their own. zstd unpacks the agent about three times faster than gzip
// (50 ms instead of 120-150 here, for 16.5 MB) at about the same size;
// gzip is on every host, zstd on most (the setup script says which).
type packing struct {
	ext string // on the wire and in the cache file's name
	// compress writes the payload compressed: cached says it is the copy
	// kept for every run of this build (worth more effort than one kept
	// in memory for this run only).
	compress func(w io.Writer, r io.Reader, cached bool) error
}

var (
	packZstd = &packing{ext: "zst",
		compress: func(w io.Writer, r io.Reader, cached bool) error {
			level := zstd.SpeedDefault // 6.4 MB of 16.5 in 0.14 s; "better" saves 3% in 1.1 s
			if !cached {
				level = zstd.SpeedFastest
			}
			zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1))
			if err != nil {
				return err
			}
			if _, err := io.Copy(zw, r); err != nil {
				zw.Close()
				return err
			}
			return zw.Close()
		},
	}
	packGzip = &packing{ext: "gz",
		compress: func(w io.Writer, r io.Reader, cached bool) error {
			// Level 4 makes the agent 8% smaller than the fastest, which
			// hosts also unpack 7% faster, in half a second instead of 0.3.
			level := 4
			if !cached {
				level = gzip.BestSpeed
			}
			zw, _ := gzip.NewWriterLevel(w, level)
			if _, err := io.Copy(zw, r); err != nil {
				return err
			}
			return zw.Close()
		},
	}
)

// packingFor is what a host that reported what it has gets.
func packingFor(hostSaid map[string]string) *packing {
	if _, ok := hostSaid["zstd"]; ok {
		return packZstd
	}
	return packGzip
}

// packed is the payload compressed one way: a file in the controller's
// cache, held open (another build's run may remove it meanwhile), or bytes
// in memory where there is no cache to write. hash is the compressed
// bytes' SHA-256, which the host checks before it unpacks anything.
type packed struct {
	packing *packing
	file    string
	f       *os.File
	data    []byte
	size    int64
	hash    string
}

var (
	packsMu sync.Mutex
	packs   = map[*packing]*packOnce{}
)

type packOnce struct {
	once sync.Once
	val  *packed
	err  error
}

// cacheDir is where compressed copies are kept between runs
// (~/.cache/lvsdoctor), "" without a cache directory.
func cacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "lvsdoctor")
}

// cacheName is the file that keeps the payload compressed with k, whose
// compressed bytes hash to zhash: agent-HASH-ZHASH.zst.
func (p payload) cacheName(k *packing, zhash string) string {
	return "agent-" + p.hash + "-" + zhash + "." + k.ext
}

// cacheFiles are the copies of this build compressed with k (one, or none).
func (p payload) cacheFiles(k *packing) []string {
	dir := cacheDir()
	if dir == "" {
		return nil
	}
	m, _ := filepath.Glob(filepath.Join(dir, "agent-"+p.hash+"-*."+k.ext))
	return m
}

// cached opens the copy an earlier run left if its bytes still hash to
// what its name says, which was their hash when this build compressed
// them: a copy damaged or cut short since is compressed again. (Hashing
// 6.5 MB takes 5 ms; unpacking it to compare with the binary took 85 on
// the critical path of every run that uploads.) The name is no defence
// against whoever can write the user's cache, who could as well change
// what runs in the user's place; the directory is the user's alone.
func (p payload) cached(k *packing) (*packed, bool) {
	for _, file := range p.cacheFiles(k) {
		zhash := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(file), "agent-"+p.hash+"-"), "."+k.ext)
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		h := sha256.New()
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			if _, err := io.Copy(h, f); err == nil && hex.EncodeToString(h.Sum(nil)) == zhash {
				return &packed{packing: k, file: file, f: f, size: st.Size(), hash: zhash}, true
			}
		}
		f.Close()
	}
	return nil, false
}

// hasCache says whether a copy compressed with k is in the cache, without
// checking it: enough to leave the compression to the first host that
// asks.
func (p payload) hasCache(k *packing) bool { return len(p.cacheFiles(k)) > 0 }

// pack is the payload compressed with k, the same every time it is
// asked: the cached copy when there is a good one, else compressed now
// (straight into the cache, with the copies of other builds removed).
func (p payload) pack(k *packing) (*packed, error) {
	packsMu.Lock()
	o := packs[k]
	if o == nil {
		o = &packOnce{}
		packs[k] = o
	}
	packsMu.Unlock()
	o.once.Do(func() {
		if c, ok := p.cached(k); ok {
			o.val = c
			return
		}
		if dir := cacheDir(); dir != "" {
			if c, err := p.compressTo(k, dir); err == nil {
				o.val = c
				return
			}
		}
		var z bytes.Buffer
		h := sha256.New()
		if o.err = p.compress(k, io.MultiWriter(&z, h), false); o.err == nil {
			o.val = &packed{packing: k, data: z.Bytes(), size: int64(z.Len()), hash: hex.EncodeToString(h.Sum(nil))}
		}
	})
	return o.val, o.err
}

func (p payload) compress(k *packing, w io.Writer, cached bool) error {
	f, err := os.Open(p.path)
	if err != nil {
		return err
	}
	defer f.Close()
	return k.compress(w, f, cached)
}

// compressTo compresses the payload into the cache directory (private
// to the user, written under another name and renamed when complete) and
// removes other builds' copies, and this one's that did not hash right.
func (p payload) compressTo(k *packing, dir string) (*packed, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	tmp, named, err := createUnnamed(dir)
	if err != nil {
		return nil, err
	}
	if named {
		defer os.Remove(tmp.Name())
	}
	bw := bufio.NewWriterSize(tmp, 256<<10)
	h := sha256.New()
	err = p.compress(k, io.MultiWriter(bw, h), true)
	if err == nil {
		err = bw.Flush()
	}
	zhash := hex.EncodeToString(h.Sum(nil))
	file := filepath.Join(dir, p.cacheName(k, zhash))
	if err == nil && !named {
		// Given its name once whole, in place of a copy by that name
		// that did not hash to it (pack compresses again for no other
		// reason); another run that compressed the same build at the
		// same time gave the same bytes that name too.
		link := func() error {
			return unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", tmp.Fd()), unix.AT_FDCWD, file, unix.AT_SYMLINK_FOLLOW)
		}
		if err = link(); errors.Is(err, unix.EEXIST) {
			os.Remove(file)
			if err = link(); errors.Is(err, unix.EEXIST) {
				err = nil
			}
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if named {
		if err := os.Rename(tmp.Name(), file); err != nil {
			return nil, err
		}
	}
	// Other builds' copies, however compressed (and named: agent-HASH.gz
	// before), and this build's others compressed with k.
	old, _ := filepath.Glob(filepath.Join(dir, "agent-*"))
	for _, o := range old {
		base := filepath.Base(o)
		if o != file && (!strings.HasPrefix(base, "agent-"+p.hash+"-") || strings.HasSuffix(base, "."+k.ext)) {
			os.Remove(o)
		}
	}
	// And what a run that was killed while compressing left.
	parts, _ := filepath.Glob(filepath.Join(dir, ".agent-*.part"))
	for _, o := range parts {
		if st, err := os.Stat(o); err == nil && time.Since(st.ModTime()) > time.Hour {
			os.Remove(o)
		}
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &packed{packing: k, file: file, f: f, size: st.Size(), hash: zhash}, nil
}

// createUnnamed opens a file in dir that has no name until it is linked
// (O_TMPFILE): a run that ends while it compresses in the background (its
// hosts had their copy) leaves nothing, however it ends. Where the file
// system cannot, a ".agent-*.part" file (named true), which such a run
// leaves behind and a later compression removes after an hour.
func createUnnamed(dir string) (f *os.File, named bool, err error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err == nil {
		return os.NewFile(uintptr(fd), filepath.Join(dir, "(unnamed)")), false, nil
	}
	f, err = os.CreateTemp(dir, ".agent-*.part")
	return f, true, err
}

// prepareUpload hashes the payload and, where a host will most likely
// need a copy, gets it compressed the way most hosts unpack: always
// without --keep-agent, and with it when no copy of this build is cached
// (a new build, which no host has cached yet either). A cached copy is
// only opened (and checked) when a host asks for it.
func prepareUpload(keep bool) {
	p, err := loadPayload()
	if err != nil || (keep && p.hasCache(packZstd)) {
		return
	}
	p.pack(packZstd)
}

// Chunks of the upload, and how many may be on their way: a host's sshd
// keeps what it has not yet written to the setup script in a buffer that
// it grows by copying, into fresh pages, for every packet (OpenSSH's
// sshbuf and recallocarray), and it reads up to 256 KiB a turn from the
// network but writes at most a pipe's 64 KiB to the script. Sent in one
// go, the upload fills sshd's 2 MiB channel window and that buffer with
// it: 6.4 MB cost the lab's four sshds 730-780 ms of CPU, sent as chunks
// of 512 KiB, two at a time, 370-410 ms (and 290-320 ms of wall time
// instead of 420-480). One chunk at a time, or chunks of 256 KiB, wait
// more for the acknowledgements than they save; two in flight still move
// 1 MiB per round trip.
const (
	uploadChunk    = 512 << 10
	uploadInFlight = 2
)

// send gives the setup script the upload: "upload EXT SIZE HASH", then
// "N" and N bytes per chunk, and "0". acks brings the script's "@got"
// after each chunk it has stored, and ends when the script stops;
// progress hears how many bytes the host has stored.
func (k *packed) send(w io.Writer, acks <-chan struct{}, progress func(stored int64)) error {
	if _, err := fmt.Fprintf(w, "upload %s %d %s\n", k.packing.ext, k.size, k.hash); err != nil {
		return fmt.Errorf("uploading the agent: %w", err)
	}
	var r io.Reader = bytes.NewReader(k.data)
	if k.f != nil {
		r = io.NewSectionReader(k.f, 0, k.size)
	}
	buf := make([]byte, 0, uploadChunk+16)
	var chunks []int64 // sent, not yet acknowledged
	var stored int64
	ack := func() error {
		if _, ok := <-acks; !ok {
			return errors.New("uploading the agent: the host stopped reading it")
		}
		stored += chunks[0]
		chunks = chunks[1:]
		progress(stored)
		return nil
	}
	for left := k.size; left > 0; {
		if len(chunks) == uploadInFlight {
			if err := ack(); err != nil {
				return err
			}
		}
		n := min(left, uploadChunk)
		buf = fmt.Appendf(buf[:0], "%d\n", n)
		head := len(buf)
		buf = buf[:head+int(n)]
		if _, err := io.ReadFull(r, buf[head:]); err != nil {
			return fmt.Errorf("uploading the agent: %w", err)
		}
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("uploading the agent: %w", err)
		}
		chunks = append(chunks, n)
		left -= n
	}
	if _, err := io.WriteString(w, "0\n"); err != nil {
		return fmt.Errorf("uploading the agent: %w", err)
	}
	// The last chunks are stored when the host says so: until then the
	// upload is still in progress.
	for len(chunks) > 0 {
		if err := ack(); err != nil {
			return err
		}
	}
	return nil
}

// drop forgets a cached copy that a host could not unpack, so that the
// next run compresses the binary again.
func (k *packed) drop() {
	if k.file != "" {
		os.Remove(k.file)
	}
}
