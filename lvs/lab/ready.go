package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const pollEvery = 15 * time.Millisecond

// RunIn runs fn on a thread inside the named network namespace (sockets
// fn opens belong to it).
func RunIn(namespace string, fn func() error) error {
	h, err := netns.GetFromName(namespace)
	if err != nil {
		return fmt.Errorf("namespace %s: %w", namespace, err)
	}
	defer h.Close()
	return inNS(h, fn)
}

// waitReady waits until every veth has carrier, every real server's
// services answer the director, and the client reaches the VIP.
func (e *env) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var hosts []*Host
	for _, h := range hostPtrs(e.st) {
		if len(h.Ifaces) > 0 {
			hosts = append(hosts, h)
		}
	}
	err := parallel(ctx, 32, hosts, func(h *Host) error {
		hn, err := e.nl(h.Role)
		if err != nil {
			return err
		}
		defer hn.Close()
		for _, ifc := range h.Ifaces {
			for {
				l, err := hn.LinkByName(ifc.Name)
				if err == nil && l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0 {
					break
				}
				if ctx.Err() != nil {
					return fmt.Errorf("%s %s: no carrier", h.Role, ifc.Name)
				}
				time.Sleep(pollEvery)
			}
		}
		return nil
	})
	if err != nil {
		return readyErr(err, timeout)
	}
	type probe struct {
		from, proto, addr, what string
	}
	var probes []probe
	for _, svc := range e.st.Services {
		for _, rs := range svc.RealServers {
			probes = append(probes, probe{RoleDirector, svc.L4(), serviceAddr(svc, rs), rs.Name + " " + svc.Kind})
		}
	}
	err = parallel(ctx, 64, probes, func(p probe) error {
		return e.waitReach(ctx, p.from, p.proto, p.addr, p.what)
	})
	if err != nil {
		return readyErr(err, timeout)
	}
	probes = probes[:0]
	clients := []string{RoleClient}
	if e.st.Options.Topology == TopologyClientOnDirector {
		clients = append(clients, RoleDirector)
	}
	for _, svc := range e.st.Services {
		for _, c := range clients {
			probes = append(probes, probe{c, svc.L4(), net.JoinHostPort(svc.VIP, fmt.Sprint(svc.Port)), svc.String()})
		}
	}
	err = parallel(ctx, 4, probes, func(p probe) error {
		return e.waitReach(ctx, p.from, p.proto, p.addr, p.what)
	})
	return readyErr(err, timeout)
}

func readyErr(err error, timeout time.Duration) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("lab not ready after %s: %w", timeout, err)
}

// waitReach polls from the namespace of role until addr answers: a TCP
// connect, or a UDP datagram echoed back.
func (e *env) waitReach(ctx context.Context, role, proto, addr, what string) error {
	var last error
	err := inNS(e.handle(role), func() error {
		for {
			last = reachOnce(proto, addr, 250*time.Millisecond)
			if last == nil {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(pollEvery):
			}
		}
	})
	if err != nil {
		return fmt.Errorf("%s cannot reach %s %s (%s): %w", role, proto, addr, what, errors.Join(last, err))
	}
	return nil
}

func reachOnce(proto, addr string, timeout time.Duration) error {
	c, err := net.DialTimeout(proto, addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	if proto != "udp" {
		return nil
	}
	msg := []byte("lvsdoctor-ready")
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(msg); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if !bytes.Equal(buf[:n], msg) {
		return fmt.Errorf("udp echo answered %q", buf[:n])
	}
	return nil
}

// HTTPGet connects from inside namespace to addr (IP:PORT), sends
// "GET / HTTP/1.0" and returns the status code and body. The socket is
// made on the namespace's thread itself: net/http's transport would dial
// from another goroutine, outside the namespace.
func HTTPGet(namespace, addr string, timeout time.Duration) (int, string, error) {
	var conn net.Conn
	err := RunIn(namespace, func() error {
		var err error
		conn, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	host, _, _ := net.SplitHostPort(addr)
	if _, err := fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", host); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// Exec runs argv inside namespace (started from a thread in it, so the
// child starts there) with the given stdio, waits, and returns its exit
// code (128+signal when a signal ended it).
func Exec(namespace string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if len(argv) == 0 {
		return 0, errors.New("no command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	if err := RunIn(namespace, cmd.Start); err != nil {
		return 0, err
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, err
	}
	return 0, nil
}
