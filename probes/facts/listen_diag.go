package facts

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// tcpListeners lists the TCP sockets in LISTEN through sock_diag, asking
// the kernel for that state only. vishvananda/netlink's SocketDiagTCP asks
// for every state (its state filter, PR #916, was closed unmerged), and
// the kernel then walks its whole established hash, in every namespace
// and for both families: on a busy director or real server that is every
// connection of the machine, and on the lab with fifty real servers it was
// the largest single cost of a check. With LISTEN alone the kernel stops
// after the listening hash (inet_diag_dump_icsk). The library still does
// the netlink socket and the dump; only the request and the few fields
// read from the reply are written here.
func tcpListeners(family uint8) ([]listenSock, error) {
	req := nl.NewNetlinkRequest(nl.SOCK_DIAG_BY_FAMILY, unix.NLM_F_DUMP)
	req.AddData(listenRequest{family: family})
	var out []listenSock
	var perr error
	err := req.ExecuteIter(unix.NETLINK_INET_DIAG, nl.SOCK_DIAG_BY_FAMILY, func(msg []byte) bool {
		s, err := parseInetDiagMsg(msg)
		if err != nil {
			perr = err
			return false
		}
		if s.state == tcpListen {
			out = append(out, s)
		}
		return true
	})
	if err != nil && !errors.Is(err, nl.ErrDumpInterrupted) {
		return nil, err
	}
	return out, perr
}

type listenSock struct {
	addr  netip.AddrPort
	state uint8
	inode uint32
}

// listenRequest is struct inet_diag_req_v2 (linux/inet_diag.h) for TCP
// sockets of one family in state LISTEN, no extensions.
type listenRequest struct{ family uint8 }

const sizeofInetDiagReqV2 = 56

func (r listenRequest) Len() int { return sizeofInetDiagReqV2 }

func (r listenRequest) Serialize() []byte {
	b := make([]byte, sizeofInetDiagReqV2)
	b[0] = r.family
	b[1] = unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(b[4:8], 1<<tcpListen) // idiag_states
	return b
}

// parseInetDiagMsg reads struct inet_diag_msg: family, state, the source
// port and address of inet_diag_sockid (network order), and the inode.
func parseInetDiagMsg(b []byte) (listenSock, error) {
	const sizeofInetDiagMsg = 72
	if len(b) < sizeofInetDiagMsg {
		return listenSock{}, fmt.Errorf("sock_diag: short message (%d bytes, want %d)", len(b), sizeofInetDiagMsg)
	}
	port := binary.BigEndian.Uint16(b[4:6])
	var addr netip.Addr
	if b[0] == unix.AF_INET6 {
		addr = netip.AddrFrom16([16]byte(b[8:24]))
	} else {
		addr = netip.AddrFrom4([4]byte(b[8:12]))
	}
	return listenSock{addr: netip.AddrPortFrom(addr, port), state: b[1], inode: binary.NativeEndian.Uint32(b[68:72])}, nil
}
