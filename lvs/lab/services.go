package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Kinds of real-server services.
const (
	KindHTTP    = "http"
	KindUDPEcho = "udp-echo"
	// KindFTP is lvsdoctor's own minimal FTP server with PASV (see
	// ServeFTP).
	KindFTP = "ftp"
	// KindHTTPAlt is the HTTP server of the firewall-mark service (port
	// 8080): its own process, so that faults can stop one service alone.
	KindHTTPAlt = "http-alt"
)

// ServeCommand gives the argv prefix that starts one real-server service
// ("lvsdoctor lab serve"); the lab appends the service flags (ServeArgs).
// Tests whose binary is not lvsdoctor override it.
var ServeCommand = func() []string {
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	return []string{exe, "lab", "serve"}
}

// ServeOptions select the one service a "lab serve" process runs.
type ServeOptions struct {
	HTTP    string // ADDR:PORT
	UDPEcho string // ADDR:PORT
	FTP     string // ADDR:PORT
	Name    string // what HTTP answers (rs1)
}

// ServeArgs are the flags of "lab serve" for one service.
func ServeArgs(kind, addr, name string) []string {
	switch kind {
	case KindUDPEcho:
		return []string{"--udp-echo", addr, "--server-name", name}
	case KindFTP:
		return []string{"--ftp", addr, "--server-name", name}
	}
	return []string{"--http", addr, "--server-name", name}
}

// ParseServeArgs parses what ServeArgs makes (for test binaries that
// dispatch "lab serve" themselves).
func ParseServeArgs(args []string) (ServeOptions, error) {
	var o ServeOptions
	for i := 0; i < len(args); i++ {
		if i+1 >= len(args) {
			return o, fmt.Errorf("flag %s needs a value", args[i])
		}
		switch args[i] {
		case "--http":
			o.HTTP = args[i+1]
		case "--udp-echo":
			o.UDPEcho = args[i+1]
		case "--ftp":
			o.FTP = args[i+1]
		case "--server-name":
			o.Name = args[i+1]
		default:
			return o, fmt.Errorf("unknown flag %s", args[i])
		}
		i++
	}
	return o, nil
}

// Serve runs one service until ctx ends: an HTTP server answering
// "NAME\n" to any request, a UDP echo, or an FTP server (ServeFTP).
func Serve(ctx context.Context, o ServeOptions) error {
	n := 0
	for _, a := range []string{o.HTTP, o.UDPEcho, o.FTP} {
		if a != "" {
			n++
		}
	}
	switch {
	case n != 1:
		return errors.New("give exactly one of --http ADDR:PORT, --udp-echo ADDR:PORT or --ftp ADDR:PORT")
	case o.FTP != "":
		return ServeFTP(ctx, o.FTP, o.Name)
	case o.HTTP != "":
		ln, err := net.Listen("tcp", o.HTTP)
		if err != nil {
			return err
		}
		body := o.Name + "\n"
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				_, _ = io.WriteString(w, body)
			}),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       30 * time.Second,
		}
		go func() { <-ctx.Done(); srv.Close() }()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	default:
		pc, err := net.ListenPacket("udp", o.UDPEcho)
		if err != nil {
			return err
		}
		go func() { <-ctx.Done(); pc.Close() }()
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}
}

func serviceAddr(svc Service, rs RealServer) string {
	return net.JoinHostPort(rs.Address, strconv.Itoa(rs.Port))
}

// startProc starts one service process from a thread inside the real
// server's namespace, so the child starts in that namespace.
func (e *env) startProc(host, kind, addr string) (int, error) {
	argv := append(ServeCommand(), ServeArgs(kind, addr, host)...)
	logPath := filepath.Join(StateDir(e.st.Name), host+"-"+kind+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	err = inNS(e.handle(host), cmd.Start)
	if err != nil {
		return 0, fmt.Errorf("%s: start %s service on %s: %w", host, kind, addr, err)
	}
	pid := cmd.Process.Pid
	go cmd.Wait() // reap it if it dies while we live (tests)
	return pid, nil
}

// startServices starts every service process that is not running.
func (e *env) startServices(ctx context.Context, onlyMissing bool) error {
	type job struct{ host, kind, addr string }
	var jobs []job
	for _, svc := range e.st.Services {
		for _, rs := range svc.RealServers {
			jobs = append(jobs, job{rs.Name, svc.Kind, serviceAddr(svc, rs)})
		}
	}
	return parallel(ctx, 8, jobs, func(j job) error {
		e.mu.Lock()
		idx := -1
		for i, p := range e.st.Procs {
			if p.Host == j.host && p.Kind == j.kind {
				idx = i
			}
		}
		var old Proc
		if idx >= 0 {
			old = e.st.Procs[idx]
		}
		e.mu.Unlock()
		if onlyMissing && idx >= 0 && e.procAlive(old) {
			return nil
		}
		pid, err := e.startProc(j.host, j.kind, j.addr)
		if err != nil {
			return err
		}
		e.mu.Lock()
		if idx >= 0 {
			e.st.Procs[idx].PID = pid
			e.st.Procs[idx].Addr = j.addr
		} else {
			e.st.Procs = append(e.st.Procs, Proc{Host: j.host, Kind: j.kind, Addr: j.addr, PID: pid})
		}
		e.mu.Unlock()
		return nil
	})
}

// procAlive reports whether p runs (not a zombie) inside its host's
// namespace (guards against a reused PID).
func (e *env) procAlive(p Proc) bool {
	if p.PID <= 0 {
		return false
	}
	h := e.st.Host(p.Host)
	if h == nil {
		return false
	}
	ino, ok := procNetnsInode(p.PID)
	if !ok || ino != e.st.Inodes[h.Namespace] {
		return false
	}
	return !procZombie(p.PID)
}

func procNetnsInode(pid int) (uint64, bool) {
	l, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/net")
	if err != nil {
		return 0, false
	}
	l = strings.TrimSuffix(strings.TrimPrefix(l, "net:["), "]")
	n, err := strconv.ParseUint(l, 10, 64)
	return n, err == nil
}

func procZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return true
	}
	return s[i+2] == 'Z' || s[i+2] == 'X'
}

// procGone reports whether pid has exited completely. A killed
// multi-threaded process shows its leader as a zombie while the other
// threads still exit (and its sockets are still open): wait until the
// leader is the only task left.
func procGone(pid int) bool {
	if !procZombie(pid) {
		return false
	}
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	return err != nil || len(tasks) <= 1
}

// killAndWait SIGKILLs pids and waits (up to 2 s) until each has exited.
func killAndWait(pids []int) error {
	var errs []error
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill %d: %w", pid, err))
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for _, pid := range pids {
		for !procGone(pid) {
			if time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("process %d still running after SIGKILL", pid))
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

// stopProc stops the service kind on host and records it as stopped.
func (e *env) stopProc(host, kind string) error {
	for i, p := range e.st.Procs {
		if p.Host == host && p.Kind == kind {
			var err error
			if e.procAlive(p) {
				err = killAndWait([]int{p.PID})
			}
			e.st.Procs[i].PID = 0
			return err
		}
	}
	return fmt.Errorf("%s runs no %s service", host, kind)
}
