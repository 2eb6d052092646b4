package facts

import (
	"net"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// The listener dump asks for LISTEN only: a listener on loopback is there
// with its port, and the connections made to it are not.
func TestTCPListeners(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	want := netip.MustParseAddrPort(l.Addr().String())
	c, err := net.Dial("tcp4", want.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	socks, err := tcpListeners(unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, so := range socks {
		if so.state != tcpListen {
			t.Errorf("%v in state %d: only listeners were asked for", so.addr, so.state)
		}
		if so.addr == want {
			found = so.inode != 0
		}
		if so.addr.String() == c.LocalAddr().String() {
			t.Errorf("the client side %v of a connection is listed", so.addr)
		}
	}
	if !found {
		t.Errorf("listener %v not in %+v", want, socks)
	}
}
