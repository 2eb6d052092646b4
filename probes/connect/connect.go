// Package connect opens test connections to a service (VIP:VPORT), each
// from its own source port, concurrently, and reports how each ended.
//
// Every socket is created and bound (port 0: the kernel picks a free
// ephemeral port) on the calling goroutine before any SYN leaves, so the
// local port is known even for connections that fail, and captures can be
// matched to them. Connecting, sending and reading then run concurrently.
package connect

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// Defaults for zero fields of obs.ConnectArgs.
const (
	DefaultCount   = 1
	DefaultTimeout = 2 * time.Second
	MaxCount       = 256
	DefaultTCP     = "GET / HTTP/1.0\r\nHost: lvsdoctor\r\n\r\n"
	DefaultUDP     = "lvsdoctor"
	maxLine        = 512
)

// Results.
const (
	OK          = "ok"
	Refused     = "refused"
	Reset       = "reset"
	Timeout     = "timeout"
	Unreachable = "unreachable"
	Error       = "error"
)

// Run opens a.Count connections to a.Dst, a.Gap apart (0: all at once).
func Run(ctx context.Context, a obs.ConnectArgs) obs.Connect {
	if a.Count <= 0 {
		a.Count = DefaultCount
	}
	if a.Count > MaxCount {
		a.Count = MaxCount
	}
	if a.Timeout <= 0 {
		a.Timeout = DefaultTimeout
	}
	proto := strings.ToLower(a.Proto)
	if proto == "" {
		proto = "tcp"
	}
	res := obs.Connect{Conns: make([]obs.Conn, a.Count)}
	for i := range res.Conns {
		res.Conns[i] = obs.Conn{Proto: proto, Remote: a.Dst}
	}
	fail := func(msg string) obs.Connect {
		for i := range res.Conns {
			res.Conns[i].Result, res.Conns[i].Error = Error, msg
		}
		return res
	}
	if proto != "tcp" && proto != "udp" {
		return fail("unknown proto " + a.Proto)
	}
	if a.App != "" && (a.App != AppFTP || proto != "tcp") {
		return fail("unknown app " + a.App + " for " + proto + " (valid: ftp over tcp)")
	}
	dst, err := parseAddr(a.Dst)
	if err != nil {
		return fail(err.Error())
	}
	var src [4]byte
	if a.Src != "" {
		h := a.Src
		if hh, _, err := net.SplitHostPort(a.Src); err == nil {
			h = hh
		}
		ip := net.ParseIP(h).To4()
		if ip == nil {
			return fail("invalid IPv4 source: " + a.Src)
		}
		copy(src[:], ip)
	}
	payload := a.Payload
	if payload == "" {
		payload = DefaultTCP
		if proto == "udp" {
			payload = DefaultUDP
		}
	}

	// Sockets first, all on this goroutine, each bound to its own port.
	files := make([]*os.File, a.Count)
	defer func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}()
	for i := range files {
		f, local, err := socket(proto, src)
		res.Conns[i].Local = local
		if err != nil {
			res.Conns[i].Result, res.Conns[i].Error = Error, err.Error()
			continue
		}
		files[i] = f
	}

	// FTP: the data connection's socket too, here, in this namespace.
	data := make([]*os.File, a.Count)
	defer func() {
		for _, f := range data {
			if f != nil {
				f.Close()
			}
		}
	}()
	if proto == "tcp" && a.App == AppFTP {
		for i := range data {
			if files[i] != nil {
				data[i], _, _ = socket(proto, src)
			}
		}
	}

	var wg sync.WaitGroup
	for i := range files {
		if files[i] == nil {
			continue
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := &res.Conns[i]
			if d := time.Duration(i) * a.Gap; d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					c.Result, c.Error = Error, ctx.Err().Error()
					return
				}
			}
			one(ctx, c, files[i], data[i], proto, dst, []byte(payload), a, a.Timeout)
		}(i)
	}
	wg.Wait()
	return res
}

func parseAddr(s string) (*unix.SockaddrInet4, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return nil, fmt.Errorf("destination %q: %v", s, err)
	}
	ip := net.ParseIP(h).To4()
	port, perr := strconv.Atoi(p)
	if ip == nil || perr != nil || port <= 0 || port > 65535 {
		return nil, fmt.Errorf("destination %q: want IPv4:port", s)
	}
	sa := &unix.SockaddrInet4{Port: port}
	copy(sa.Addr[:], ip)
	return sa, nil
}

// usedPorts are the source ports this agent's test connections had. The
// checks follow a test connection by the client's address and port
// across every capture, so no two of them may share a port in one check:
// once a connection is closed (a refused one leaves no TIME_WAIT), the
// kernel may give its port to the next bind, and two services' packets
// would read as one connection.
var usedPorts = struct {
	sync.Mutex
	m map[string]bool
}{m: map[string]bool{}}

// socket creates a non-blocking socket bound to src and a source port no
// test connection of this agent had before, and returns it with its local
// "ip:port".
func socket(proto string, src [4]byte) (*os.File, string, error) {
	typ := unix.SOCK_STREAM
	if proto == "udp" {
		typ = unix.SOCK_DGRAM
	}
	var held []int // ports seen before, kept bound so the kernel moves on
	defer func() {
		for _, fd := range held {
			unix.Close(fd)
		}
	}()
	for try := 0; ; try++ {
		fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, "", os.NewSyscallError("socket", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: src}); err != nil {
			unix.Close(fd)
			return nil, "", os.NewSyscallError("bind", err)
		}
		local := localAddr(fd)
		key := proto + " " + local
		usedPorts.Lock()
		fresh := !usedPorts.m[key]
		if fresh || try >= 64 {
			usedPorts.m[key] = true
		}
		usedPorts.Unlock()
		if fresh || try >= 64 {
			return os.NewFile(uintptr(fd), proto), local, nil
		}
		held = append(held, fd)
	}
}

func localAddr(fd int) string {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return ""
	}
	if s4, ok := sa.(*unix.SockaddrInet4); ok {
		return net.JoinHostPort(net.IP(s4.Addr[:]).String(), strconv.Itoa(s4.Port))
	}
	return ""
}

// connectFile connects the bound socket f to dst and returns it as a
// net.Conn (TCP: once the handshake is done). It sets *local to the source
// address the route chose.
func connectFile(f *os.File, proto string, dst *unix.SockaddrInet4, local *string) (net.Conn, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cerr error
	sa := *dst // unix.Connect writes into its sockaddr: one copy per goroutine
	_ = rc.Control(func(fd uintptr) {
		cerr = unix.Connect(int(fd), &sa)
		if l := localAddr(int(fd)); l != "" && !strings.HasPrefix(l, "0.0.0.0:") {
			*local = l // the source address the route chose
		}
	})
	if cerr != nil && !errors.Is(cerr, unix.EINPROGRESS) {
		return nil, os.NewSyscallError("connect", cerr)
	}
	if proto == "tcp" && cerr != nil {
		// Wait for the handshake: writable, then SO_ERROR; a stale
		// readiness from before connect shows as "no peer yet".
		var soerr error
		werr := rc.Write(func(fd uintptr) bool {
			v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
			if err != nil {
				soerr = err
				return true
			}
			switch e := syscall.Errno(v); e {
			case 0:
				if _, err := unix.Getpeername(int(fd)); err == nil {
					return true
				}
				return false
			case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
				return false
			default:
				soerr = e
				return true
			}
		})
		if werr == nil && soerr != nil {
			werr = os.NewSyscallError("connect", soerr)
		}
		if werr != nil {
			return nil, werr
		}
	}
	return net.FileConn(f)
}

// one runs a single connection to its end.
func one(ctx context.Context, c *obs.Conn, f, data *os.File, proto string, dst *unix.SockaddrInet4, payload []byte, a obs.ConnectArgs, timeout time.Duration) {
	start := time.Now()
	defer func() { c.Took = time.Since(start) }()
	deadline := start.Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = f.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = f.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	setErr := func(err error) {
		c.Result = classify(err)
		if ctx.Err() != nil && c.Result == Timeout && time.Now().Before(deadline) {
			c.Result, err = Error, ctx.Err()
		}
		c.Error = err.Error()
	}

	nc, err := connectFile(f, proto, dst, &c.Local)
	if err != nil {
		setErr(err)
		return
	}
	defer nc.Close()
	_ = nc.SetDeadline(deadline)
	stop2 := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop2()
	if proto == "tcp" && a.App == AppFTP {
		ftp(c, nc, data, deadline)
		return
	}
	if err := send(ctx, nc, proto, payload, a.Trickle); err != nil {
		setErr(err)
		return
	}
	if proto == "udp" {
		buf := make([]byte, 2048)
		n, err := nc.Read(buf)
		if err != nil {
			setErr(err)
			return
		}
		c.Result = OK
		c.Response = firstLine(buf[:n])
		return
	}
	line, err := bufio.NewReaderSize(io.LimitReader(nc, maxLine), maxLine).ReadSlice('\n')
	c.Response = firstLine(line)
	switch {
	case err == nil || len(line) > 0:
		c.Result = OK
	case errors.Is(err, io.EOF):
		c.Result = OK // connected; the server closed without a word
		c.Error = "closed without an answer"
	default:
		setErr(err)
		if c.Result == Timeout {
			// The handshake completed: the service is reachable but
			// silent. Say so rather than call it a timeout.
			c.Result = OK
			c.Error = "connected, no answer before the timeout"
		}
	}
}

// send writes the payload: at once, or (TCP with trickle) a line at a
// time, trickle apart.
func send(ctx context.Context, nc net.Conn, proto string, payload []byte, trickle time.Duration) error {
	if proto != "tcp" || trickle <= 0 {
		_, err := nc.Write(payload)
		return err
	}
	lines := strings.SplitAfter(string(payload), "\n")
	for i, ln := range lines {
		if ln == "" {
			continue
		}
		if i > 0 {
			select {
			case <-time.After(trickle):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if _, err := io.WriteString(nc, ln); err != nil {
			if i > 0 {
				// The server answered (and closed) before the whole
				// upload: its answer is what counts.
				return nil
			}
			return err
		}
	}
	return nil
}

func firstLine(b []byte) string {
	s := string(b)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

func classify(err error) string {
	var errno syscall.Errno
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return Timeout
	case errors.As(err, &errno):
		switch errno {
		case unix.ECONNREFUSED:
			return Refused
		case unix.ECONNRESET, unix.EPIPE:
			return Reset
		case unix.ETIMEDOUT:
			return Timeout
		case unix.EHOSTUNREACH, unix.ENETUNREACH:
			return Unreachable
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return Timeout
	}
	return Error
}
