package facts

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/lvsdoctor/lvsdoctor/lvs/ipvs"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// ParseCounters reads the header/value line pairs of /proc/net/netstat
// and /proc/net/snmp ("TcpExt: A B" then "TcpExt: 1 2") into
// "TcpExt.A" -> 1.
//
// The controller parses every host's text twice a check (a hundred times
// at fifty real servers), about 300 counters each: the fields are walked
// in place, and the keys, the same names every time, are made once per
// process (counterKey), not once per counter per snapshot: 53 us and 6
// allocations a snapshot instead of 82 us and 345 (BenchmarkParseCounters,
// against the plain reading that FuzzParseCounters holds it to).
func ParseCounters(text string, into map[string]int64) error {
	var head, prefix string
	haveHead := false
	var key []byte
	for len(text) > 0 {
		var line string
		line, text, _ = strings.Cut(text, "\n")
		line = strings.TrimSuffix(line, "\r")
		p, fields, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if !haveHead || p != prefix {
			head, prefix, haveHead = fields, p, true
			continue
		}
		haveHead = false
		names, values := newSplitter(head), newSplitter(fields)
		if nn, nv := names.count(), values.count(); nn != nv {
			return fmt.Errorf("%s: %d names but %d values", p, nn, nv)
		}
		for {
			name, ok := names.next()
			if !ok {
				break
			}
			f, _ := values.next()
			v, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				if u, uerr := strconv.ParseUint(f, 10, 64); uerr == nil {
					v = int64(u >> 1) // out of int64 range: keep the order of magnitude
				} else {
					continue
				}
			}
			key = append(append(append(key[:0], p...), '.'), name...)
			into[counterKey(key)] = v
		}
	}
	return nil
}

// splitter walks the fields of a line as strings.Fields splits them;
// a line with bytes beyond ASCII (never in /proc's counters) is split by
// strings.Fields itself, which knows Unicode's spaces.
type splitter struct {
	s      string
	fields []string // for a line beyond ASCII
	wide   bool
}

var asciiSpace = [256]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

func newSplitter(s string) splitter {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return splitter{wide: true, fields: strings.Fields(s)}
		}
	}
	return splitter{s: s}
}

func (sp *splitter) count() int {
	if sp.wide {
		return len(sp.fields)
	}
	n, in := 0, false
	for i := 0; i < len(sp.s); i++ {
		space := asciiSpace[sp.s[i]]
		if !space && !in {
			n++
		}
		in = !space
	}
	return n
}

func (sp *splitter) next() (string, bool) {
	if sp.wide {
		if len(sp.fields) == 0 {
			return "", false
		}
		f := sp.fields[0]
		sp.fields = sp.fields[1:]
		return f, true
	}
	i := 0
	for i < len(sp.s) && asciiSpace[sp.s[i]] {
		i++
	}
	if i == len(sp.s) {
		sp.s = ""
		return "", false
	}
	j := i
	for j < len(sp.s) && !asciiSpace[sp.s[j]] {
		j++
	}
	f := sp.s[i:j]
	sp.s = sp.s[j:]
	return f, true
}

var (
	counterKeysMu sync.RWMutex
	counterKeys   = map[string]string{}
)

// counterKey is b as a string, the same string for the same bytes (a
// lookup by the bytes allocates nothing). Bounded: /proc has a few hundred
// counter names, a malformed text could have any number.
func counterKey(b []byte) string {
	counterKeysMu.RLock()
	k, ok := counterKeys[string(b)]
	counterKeysMu.RUnlock()
	if ok {
		return k
	}
	k = string(b)
	counterKeysMu.Lock()
	if len(counterKeys) < 4096 {
		counterKeys[k] = k
	}
	counterKeysMu.Unlock()
	return k
}

// ParseListeners reads /proc/net/tcp or /proc/net/udp and returns the
// sockets in state (0A: TCP LISTEN, 07: UDP unconnected).
func ParseListeners(r io.Reader, proto, state string) ([]obs.Listener, error) {
	sc := bufio.NewScanner(r)
	var out []obs.Listener
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != state {
			continue
		}
		addr, err := hexAddrPort(f[1])
		if err != nil {
			return out, err
		}
		ino, _ := strconv.ParseUint(f[9], 10, 64)
		out = append(out, obs.Listener{Proto: proto, Addr: addr, Inode: ino})
	}
	return out, sc.Err()
}

// hexAddrPort decodes /proc/net/tcp's "0100007F:0050" (IPv4 in host
// byte order, little endian here) into "127.0.0.1:80".
func hexAddrPort(s string) (string, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok || len(h) != 8 {
		return "", fmt.Errorf("bad address %q", s)
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return "", err
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return "", err
	}
	v := binary.LittleEndian.Uint32(b)
	ip := net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	return net.JoinHostPort(ip.String(), strconv.Itoa(int(port))), nil
}

// ParseIPVS reads /proc/net/ip_vs; the parser lives in lvs/ipvs.
func ParseIPVS(r io.Reader) (*obs.IPVSTable, error) {
	t, err := ipvs.ParseProcIPVS(r)
	return t.Obs(), err
}

// readProc reads a small /proc file with open, read and close only:
// os.ReadFile also stats it and tries the poller (two more system calls
// each), and a check reads some 1500 sysctls at fifty real servers (17 us
// a read instead of 33 here).
func readProc(path string) ([]byte, error) { return readAt(nil, path, false) }

// readSysctl reads the sysctl rel of the open directory dir. A sysctl's
// value comes whole from one read, so a read that leaves room in the
// buffer is the last: no read of zero bytes after it.
func readSysctl(dir *os.File, rel string) ([]byte, error) { return readAt(dir, rel, true) }

// readAt reads name, relative to dir where dir is not nil; errors name the
// whole path.
func readAt(dir *os.File, name string, whole bool) ([]byte, error) {
	dirfd, path := unix.AT_FDCWD, name
	if dir != nil {
		dirfd, path = int(dir.Fd()), filepath.Join(dir.Name(), name)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	b := make([]byte, 0, 512)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		room := cap(b) - len(b)
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		b = b[:len(b)+n]
		if n == 0 || (whole && n < room) {
			return b, nil
		}
	}
}
