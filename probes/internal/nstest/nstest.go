// Package nstest builds small network-namespace topologies for the probe
// tests: namespaces joined by veths, with addresses from the reserved test
// ranges. Nothing is ever added to the root namespace: veths are created
// inside a test namespace and their peer is moved straight into another.
// Everything is removed with t.Cleanup, even when the test fails.
package nstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// NS is one test namespace.
type NS struct {
	Name   string
	Handle netns.NsHandle
	nl     *netlink.Handle
}

func randName() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "lvspt-" + hex.EncodeToString(b[:])
}

// New creates a fresh named namespace with lo up.
func New(t testing.TB) *NS {
	t.Helper()
	name := randName()
	type res struct {
		h   netns.NsHandle
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			ch <- res{err: err}
			return
		}
		defer orig.Close()
		h, err := netns.NewNamed(name) // switches this thread into it
		if rerr := netns.Set(orig); rerr != nil {
			// Leave the thread locked: it dies with the goroutine.
			ch <- res{h: h, err: fmt.Errorf("restore namespace: %w", rerr)}
			return
		}
		runtime.UnlockOSThread()
		ch <- res{h: h, err: err}
	}()
	r := <-ch
	if r.err != nil {
		if r.h.IsOpen() {
			r.h.Close()
			_ = netns.DeleteNamed(name)
		}
		t.Fatalf("create namespace %s: %v", name, r.err)
	}
	ns := &NS{Name: name, Handle: r.h}
	t.Cleanup(func() {
		if ns.nl != nil {
			ns.nl.Close()
		}
		ns.Handle.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	h, err := netlink.NewHandleAt(r.h)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", name, err)
	}
	ns.nl = h
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("lo up in %s: %v", name, err)
	}
	return ns
}

// NL is a netlink handle bound to the namespace.
func (ns *NS) NL() *netlink.Handle { return ns.nl }

// Inode is the namespace's nsfs inode: what /proc/PID/task/TID/ns/net of a
// thread inside it, or an agent's hello, shows.
func (ns *NS) Inode(t testing.TB) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+ns.Name, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// Do runs fn on a goroutine whose thread is inside the namespace, and
// waits for it. Sockets fn opens belong to the namespace; goroutines fn
// starts do not (open their sockets in fn itself).
func (ns *NS) Do(fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			ch <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns.Handle); err != nil {
			ch <- err
			runtime.UnlockOSThread()
			return
		}
		var ferr error
		func() {
			defer func() {
				if r := recover(); r != nil {
					ferr = fmt.Errorf("panic: %v", r)
				}
			}()
			ferr = fn()
		}()
		if err := netns.Set(orig); err != nil {
			// Do not unlock: the thread is in the wrong namespace and
			// must die with this goroutine.
			ch <- fmt.Errorf("restore namespace: %w (after %v)", err, ferr)
			return
		}
		runtime.UnlockOSThread()
		ch <- ferr
	}()
	return <-ch
}

// MustDo is Do that fails the test on error.
func (ns *NS) MustDo(t testing.TB, fn func() error) {
	t.Helper()
	if err := ns.Do(fn); err != nil {
		t.Fatalf("in %s: %v", ns.Name, err)
	}
}

// Sysctl writes /proc/sys/<path with dots> inside the namespace.
func (ns *NS) Sysctl(t testing.TB, key, val string) {
	t.Helper()
	p := "/proc/sys/" + dotsToSlashes(key)
	ns.MustDo(t, func() error { return os.WriteFile(p, []byte(val), 0o644) })
}

func dotsToSlashes(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] == '.' {
			b[i] = '/'
		}
	}
	return string(b)
}

// Veth joins a and b with a veth (aIf in a, bIf in b), gives them the
// addresses (CIDR, may be empty) and brings both ends up.
func Veth(t testing.TB, a *NS, aIf, aAddr string, b *NS, bIf, bAddr string) {
	t.Helper()
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: aIf},
		PeerName:      bIf,
		PeerNamespace: netlink.NsFd(int(b.Handle)),
	}
	if err := a.nl.LinkAdd(v); err != nil {
		t.Fatalf("veth %s/%s: %v", aIf, bIf, err)
	}
	setup := func(ns *NS, name, addr string) {
		l, err := ns.nl.LinkByName(name)
		if err != nil {
			t.Fatalf("%s in %s: %v", name, ns.Name, err)
		}
		if addr != "" {
			a, err := netlink.ParseAddr(addr)
			if err != nil {
				t.Fatal(err)
			}
			if err := ns.nl.AddrAdd(l, a); err != nil {
				t.Fatalf("addr %s on %s: %v", addr, name, err)
			}
		}
		if err := ns.nl.LinkSetUp(l); err != nil {
			t.Fatalf("up %s: %v", name, err)
		}
	}
	setup(a, aIf, aAddr)
	setup(b, bIf, bAddr)
	WaitCarrier(t, a, aIf)
	WaitCarrier(t, b, bIf)
}

// WaitCarrier waits (up to 5 s) until the link reports lower layer up.
func WaitCarrier(t testing.TB, ns *NS, name string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := ns.nl.LinkByName(name)
		if err == nil && l.Attrs().OperState == netlink.OperUp {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s: no carrier", name, ns.Name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// DefaultRoute adds "default via gw" in ns.
func DefaultRoute(t testing.TB, ns *NS, gw string) {
	t.Helper()
	r := &netlink.Route{Gw: net.ParseIP(gw)}
	if err := ns.nl.RouteAdd(r); err != nil {
		t.Fatalf("default via %s in %s: %v", gw, ns.Name, err)
	}
}

// Pair is two namespaces joined by one veth:
// A eth0 198.18.0.1/24 <-> B eth0 198.18.0.2/24.
type Pair struct {
	A, B         *NS
	AAddr, BAddr string
}

// NewPair builds a Pair.
func NewPair(t testing.TB) *Pair {
	t.Helper()
	a, b := New(t), New(t)
	Veth(t, a, "eth0", "198.18.0.1/24", b, "eth0", "198.18.0.2/24")
	return &Pair{A: a, B: b, AAddr: "198.18.0.1", BAddr: "198.18.0.2"}
}

// Routed is A - R - B: A eth0 198.18.1.2/24 (default via 198.18.1.1),
// R eth0 198.18.1.1/24 and eth1 198.18.2.1/24 with forwarding on,
// B eth0 198.18.2.2/24 (default via 198.18.2.1).
type Routed struct {
	A, R, B      *NS
	AAddr, BAddr string
	RA, RB       string // router addresses on A's and B's side
}

// NewRouted builds a Routed topology.
func NewRouted(t testing.TB) *Routed {
	t.Helper()
	a, r, b := New(t), New(t), New(t)
	Veth(t, a, "eth0", "198.18.1.2/24", r, "eth0", "198.18.1.1/24")
	Veth(t, b, "eth0", "198.18.2.2/24", r, "eth1", "198.18.2.1/24")
	r.Sysctl(t, "net.ipv4.ip_forward", "1")
	DefaultRoute(t, a, "198.18.1.1")
	DefaultRoute(t, b, "198.18.2.1")
	return &Routed{A: a, R: r, B: b, AAddr: "198.18.1.2", BAddr: "198.18.2.2", RA: "198.18.1.1", RB: "198.18.2.1"}
}

// ServeTCP listens on addr (IP:PORT) inside ns and hands every accepted
// connection to fn, which closes it; it stops when the test ends.
func ServeTCP(t testing.TB, ns *NS, addr string, fn func(net.Conn)) {
	t.Helper()
	var ln net.Listener
	ns.MustDo(t, func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fn(c)
		}
	}()
}
