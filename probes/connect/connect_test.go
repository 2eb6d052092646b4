package connect

import (
	"bufio"
	"context"
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/lvsdoctor/lvsdoctor/probes/internal/nstest"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
)

// setup: A (client) and B (server: HTTP-ish TCP on 8080, UDP echo on
// 5353); in A, 203.0.113.0/24 goes via B, which does not forward (a black
// hole), and 203.0.113.200 is an unreachable route.
func setup(t *testing.T) *nstest.Pair {
	t.Helper()
	p := nstest.NewPair(t)
	var ln net.Listener
	var uc net.PacketConn
	p.B.MustDo(t, func() error {
		var err error
		if ln, err = net.Listen("tcp4", p.BAddr+":8080"); err != nil {
			return err
		}
		uc, err = net.ListenPacket("udp4", p.BAddr+":5353")
		return err
	})
	t.Cleanup(func() { ln.Close(); uc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = bufio.NewReader(c).ReadString('\n')
				_, _ = c.Write([]byte("HTTP/1.0 200 OK\r\n\r\nhi"))
			}()
		}
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, a, err := uc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = uc.WriteTo(buf[:n], a)
		}
	}()
	h := p.A.NL()
	_, bh, _ := net.ParseCIDR("203.0.113.0/24")
	if err := h.RouteAdd(&netlink.Route{Dst: bh, Gw: net.ParseIP(p.BAddr)}); err != nil {
		t.Fatal(err)
	}
	_, un, _ := net.ParseCIDR("203.0.113.200/32")
	if err := h.RouteAdd(&netlink.Route{Dst: un, Type: unix.RTN_UNREACHABLE}); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, ns *nstest.NS, a obs.ConnectArgs) obs.Connect {
	t.Helper()
	var r obs.Connect
	start := time.Now()
	ns.MustDo(t, func() error {
		r = Run(context.Background(), a)
		return nil
	})
	for _, c := range r.Conns {
		t.Logf("%+v", c)
	}
	t.Logf("took %v", time.Since(start))
	return r
}

func TestConnect(t *testing.T) {
	testenv.RequireRoot(t)
	p := setup(t)
	cases := []struct {
		name string
		args obs.ConnectArgs
		want string
	}{
		{"tcp ok", obs.ConnectArgs{Proto: "tcp", Src: p.AAddr, Dst: p.BAddr + ":8080", Count: 4}, OK},
		{"tcp ok any source, gap", obs.ConnectArgs{Proto: "tcp", Dst: p.BAddr + ":8080", Count: 2, Gap: 20 * time.Millisecond}, OK},
		{"tcp refused", obs.ConnectArgs{Proto: "tcp", Src: p.AAddr, Dst: p.BAddr + ":8081", Count: 2}, Refused},
		{"tcp timeout", obs.ConnectArgs{Proto: "tcp", Src: p.AAddr, Dst: "203.0.113.100:80", Count: 2, Timeout: 300 * time.Millisecond}, Timeout},
		{"tcp unreachable", obs.ConnectArgs{Proto: "tcp", Dst: "203.0.113.200:80"}, Unreachable},
		{"udp ok", obs.ConnectArgs{Proto: "udp", Src: p.AAddr, Dst: p.BAddr + ":5353", Count: 3}, OK},
		{"udp refused", obs.ConnectArgs{Proto: "udp", Src: p.AAddr, Dst: p.BAddr + ":5354"}, Refused},
		{"udp timeout", obs.ConnectArgs{Proto: "udp", Src: p.AAddr, Dst: "203.0.113.100:53", Timeout: 300 * time.Millisecond}, Timeout},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := run(t, p.A, c.args)
			n := max(c.args.Count, 1)
			if len(r.Conns) != n {
				t.Fatalf("%d conns, want %d", len(r.Conns), n)
			}
			ports := map[string]bool{}
			for _, cn := range r.Conns {
				if cn.Result != c.want {
					t.Errorf("result %q (%s), want %q", cn.Result, cn.Error, c.want)
				}
				h, port, err := net.SplitHostPort(cn.Local)
				if err != nil || port == "0" {
					t.Errorf("local %q: no port", cn.Local)
				}
				if c.args.Src != "" && h != c.args.Src {
					t.Errorf("local %q not from %s", cn.Local, c.args.Src)
				}
				if ports[cn.Local] {
					t.Errorf("local %s used twice", cn.Local)
				}
				ports[cn.Local] = true
				if c.want == OK && c.args.Proto == "tcp" && cn.Response != "HTTP/1.0 200 OK" {
					t.Errorf("response %q", cn.Response)
				}
				if c.want == OK && c.args.Proto == "udp" && cn.Response != DefaultUDP {
					t.Errorf("udp echo %q", cn.Response)
				}
				if c.args.Timeout > 0 && cn.Took > c.args.Timeout+time.Second {
					t.Errorf("took %v past timeout %v", cn.Took, c.args.Timeout)
				}
			}
		})
	}
}

func TestConnectBadArgs(t *testing.T) {
	for _, a := range []obs.ConnectArgs{
		{Proto: "sctp", Dst: "198.18.0.1:80"},
		{Proto: "tcp", Dst: "198.18.0.1"},
		{Proto: "tcp", Dst: "198.18.0.1:80", Src: "nope"},
	} {
		r := Run(context.Background(), a)
		if len(r.Conns) != 1 || r.Conns[0].Result != Error {
			t.Errorf("%+v: %+v", a, r)
		}
	}
}

// A port once given to a test connection is never given again in the same
// agent, even after its socket is closed and the kernel would reuse it:
// the checks tell connections apart by the client's port.
func TestSocketPortsNotReused(t *testing.T) {
	// 1000 binds from ~28000 ephemeral ports: without the guard the
	// kernel's random choice repeats one about 17 times.
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		f, local, err := socket("tcp", [4]byte{127, 0, 0, 1})
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if seen[local] {
			t.Fatalf("%s given twice", local)
		}
		seen[local] = true
	}
}
