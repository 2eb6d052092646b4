package facts

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/lvsdoctor/lvsdoctor/lvs/ipvs"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// ParseCounters reads the header/value line pairs of /proc/net/netstat
// and /proc/net/snmp ("TcpExt: A B" then "TcpExt: 1 2") into
// "TcpExt.A" -> 1.
func ParseCounters(r io.Reader, into map[string]int64) error {
	sc := bufio.NewScanner(r)
	// TcpExt's lines run to a few KiB: grown as needed from bufio's 4 KiB,
	// not 64 KiB up front for each of the four reads of every host.
	sc.Buffer(nil, 1<<20)
	var head []string
	var prefix string
	for sc.Scan() {
		line := sc.Text()
		p, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if head == nil || p != prefix {
			head, prefix = fields, p
			continue
		}
		if len(fields) != len(head) {
			return fmt.Errorf("%s: %d names but %d values", p, len(head), len(fields))
		}
		for i, f := range fields {
			v, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				if u, uerr := strconv.ParseUint(f, 10, 64); uerr == nil {
					v = int64(u >> 1) // out of int64 range: keep the order of magnitude
				} else {
					continue
				}
			}
			into[p+"."+head[i]] = v
		}
		head, prefix = nil, ""
	}
	return sc.Err()
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
func readProc(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	b := make([]byte, 0, 512)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return b, nil
		}
		b = b[:len(b)+n]
	}
}
