package ipvs

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// maxLine bounds one line of input: the kernel's and ipvsadm's lines are
// short; a longer one is not theirs.
const maxLine = 64 << 10

func newScanner(r io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	return sc
}

func scanErr(src string, n int, err error) error {
	if errors.Is(err, bufio.ErrTooLong) {
		return &ParseError{Source: src, Line: n + 1, Msg: fmt.Sprintf("line longer than %d bytes", maxLine)}
	}
	return fmt.Errorf("%s: %w", src, err)
}

// ReadProc reads /proc/net/ip_vs of the calling thread's network
// namespace. Persistence timeouts stay in ticks: see Table.SetHZ.
func ReadProc() (*Table, error) {
	f, err := os.Open("/proc/thread-self/net/ip_vs")
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w (/proc/net/ip_vs does not exist)", ErrNoIPVS)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseProcIPVS(f)
}

// ParseProcIPVS reads /proc/net/ip_vs as ip_vs_info_seq_show
// (net/netfilter/ipvs/ip_vs_ctl.c) prints it:
//
//	IP Virtual Server version 1.2.1 (size=4096)
//	Prot LocalAddress:Port Scheduler Flags
//	  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
//	TCP  CB007164:0050 rr
//	  -> C6120002:0050      Masq    1      0          0
//	UDP  CB007164:0035 sh ops persistent 90000 FFFFFF00
//	FWM  00000001 wlc
//	TCP  [2001:0db8:0000:0000:0000:0000:0000:0001]:0050 rr
//
// IPv4 addresses, ports and marks are hex; the persistence timeout is
// in ticks (TimeoutJiffies) and the netmask hex (IPv6: the prefix
// length). Scheduler flags other than ops are not shown by the kernel.
func ParseProcIPVS(r io.Reader) (*Table, error) {
	const src = "/proc/net/ip_vs"
	t := &Table{Services: []Service{}}
	sc := newScanner(r)
	var cur *Service
	n := 0
	for sc.Scan() {
		n++
		l := &lineErr{src: src, n: n, text: sc.Text()}
		f := strings.Fields(l.text)
		if len(f) == 0 {
			continue
		}
		switch {
		case strings.HasPrefix(l.text, "IP Virtual Server version"):
			v, size, err := ParseVersionLine(l.text)
			if err != nil {
				return t, l.errf("%v", err)
			}
			t.Version, t.ConnTableSize = v, size
		case f[0] == "Prot" || (f[0] == "->" && len(f) > 1 && f[1] == "RemoteAddress:Port"):
			// column titles
		case f[0] == "->":
			if cur == nil {
				return t, l.errf("real server line before any service")
			}
			if len(f) != 6 {
				return t, l.errf("want `-> ADDR:PORT Forward Weight ActiveConn InActConn`, got %d fields", len(f))
			}
			addr, err := procAddrPort(f[1])
			if err != nil {
				return t, l.errf("%v", err)
			}
			d := Dest{Addr: addr, PersistC: -1}
			var ok bool
			if d.Forward, ok = forwardName(f[2]); !ok {
				return t, l.errf("forwarding method %q: want Masq, Route, Tunnel or Local", f[2])
			}
			if d.Weight, err = atoiRange(f[3], 0, 1<<31-1); err != nil {
				return t, l.errf("weight: %v", err)
			}
			if d.ActiveC, err = atoiRange(f[4], 0, 1<<31-1); err != nil {
				return t, l.errf("active connections: %v", err)
			}
			if d.InactiveC, err = atoiRange(f[5], 0, 1<<31-1); err != nil {
				return t, l.errf("inactive connections: %v", err)
			}
			cur.Dests = append(cur.Dests, d)
		case f[0] == "FWM" || isProcProto(f[0]):
			if len(f) < 3 {
				return t, l.errf("short service line: want PROTO ADDR:PORT SCHEDULER")
			}
			s := Service{Proto: strings.ToLower(f[0]), Scheduler: f[2], Dests: []Dest{}}
			if f[0] == "FWM" {
				s.Proto = "fwmark"
				m, err := strconv.ParseUint(f[1], 16, 32)
				if err != nil {
					return t, l.errf("mark %q is not hex", f[1])
				}
				s.Mark = uint32(m)
			} else {
				a, err := procAddrPort(f[1])
				if err != nil {
					return t, l.errf("%v", err)
				}
				s.Addr = a
				s.IPv6 = strings.HasPrefix(a, "[")
			}
			rest := f[3:]
			if len(rest) > 0 && rest[0] == "ops" {
				s.Flags = append(s.Flags, "ops")
				rest = rest[1:]
			}
			if len(rest) > 0 {
				// the netmask is missing only in hand-written input
				if rest[0] != "persistent" || len(rest) < 2 || len(rest) > 3 {
					return t, l.errf("after the scheduler want [ops] [persistent TIMEOUT NETMASK]")
				}
				s.Persistent = true
				j, err := strconv.ParseUint(rest[1], 10, 32)
				if err != nil {
					return t, l.errf("persistence timeout %q is not a number", rest[1])
				}
				s.TimeoutJiffies = uint32(j)
				if len(rest) == 3 {
					m, err := strconv.ParseUint(rest[2], 16, 32)
					if err != nil || len(rest[2]) != 8 {
						return t, l.errf("persistence netmask %q is not 8 hex digits", rest[2])
					}
					if s.IPv6 {
						// The prefix length is kept in host order and
						// printed through ntohl (ip_vs_info_seq_show):
						// /64 reads 40000000 on a little-endian kernel,
						// 00000040 on a big-endian one.
						if m > 128 {
							m = uint64(bits.ReverseBytes32(uint32(m)))
						}
						if m < 1 || m > 128 {
							return t, l.errf("IPv6 persistence prefix %q is not a length 1..128 (in either byte order)", rest[2])
						}
						s.Netmask = "/" + strconv.FormatUint(m, 10)
					} else {
						var b [4]byte
						binary.BigEndian.PutUint32(b[:], uint32(m))
						s.Netmask = netip.AddrFrom4(b).String()
					}
				}
			}
			t.Services = append(t.Services, s)
			cur = &t.Services[len(t.Services)-1]
		default:
			return t, l.errf("not a service (TCP, UDP, SCTP, FWM) or real server (->) line")
		}
	}
	if err := sc.Err(); err != nil {
		return t, scanErr(src, n, err)
	}
	return t, nil
}

// isProcProto is what ip_vs_proto_name prints for a service protocol.
func isProcProto(s string) bool {
	switch s {
	case "TCP", "UDP", "SCTP":
		return true
	}
	return false
}

func atoiRange(s string, lo, hi int) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("%d out of range %d..%d", v, lo, hi)
	}
	return v, nil
}

// procAddrPort reads "CB007164:0050" (IPv4 as %08X of the host-order
// address) or "[2001:0db8:...]:0050" (IPv6 as %pI6) with a hex port.
func procAddrPort(s string) (string, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", fmt.Errorf("address %q: want HEXADDR:HEXPORT", s)
	}
	a, err := procAddr(s[:i])
	if err != nil {
		return "", err
	}
	p, err := hexPort(s[i+1:])
	if err != nil {
		return "", fmt.Errorf("address %q: %v", s, err)
	}
	return netip.AddrPortFrom(a, p).String(), nil
}

// procAddr reads an address as /proc/net/ip_vs* print it: 8 hex digits
// for IPv4, %pI6 (optionally in brackets) for IPv6.
func procAddr(h string) (netip.Addr, error) {
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if strings.Contains(h, ":") {
		a, err := netip.ParseAddr(h)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return netip.Addr{}, fmt.Errorf("IPv6 address %q is not valid", h)
		}
		return a, nil
	}
	if len(h) != 8 {
		return netip.Addr{}, fmt.Errorf("address %q: want 8 hex digits", h)
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("address %q is not hex", h)
	}
	return netip.AddrFrom4([4]byte(b)), nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && s != ""
}

func hexPort(p string) (uint16, error) {
	if len(p) == 0 || len(p) > 4 {
		return 0, fmt.Errorf("port %q: want up to 4 hex digits", p)
	}
	v, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return 0, fmt.Errorf("port %q is not hex", p)
	}
	return uint16(v), nil
}

// Conn is one entry of /proc/net/ip_vs_conn.
type Conn struct {
	Proto   string        `json:"proto"`   // tcp, udp, sctp; "ip" for fwmark persistence templates
	Client  string        `json:"client"`  // CIP:CPORT (CPORT 0 in a persistence template)
	Virtual string        `json:"virtual"` // VIP:VPORT (an fwmark template carries the mark as address)
	Local   string        `json:"local,omitempty"`
	Dest    string        `json:"dest"`  // RIP:RPORT
	State   string        `json:"state"` // ESTABLISHED, SYN_RECV, UDP, NONE...
	Expires time.Duration `json:"expires"`
	PEName  string        `json:"pe_name,omitempty"`
	PEData  string        `json:"pe_data,omitempty"`
}

// ParseProcConn reads /proc/net/ip_vs_conn as ip_vs_conn_seq_show
// (net/netfilter/ipvs/ip_vs_conn.c) prints it:
//
//	Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
//	TCP CB00710A A028 CB007164 0050 C6120002 0050 ESTABLISHED     898
//
// Kernels before 2.6.37 printed LocalIP and LPrt between ToIP and DestIP
// (the header tells, and so does the field count without one); IPv6
// addresses are %pI6, and the destination may be IPv6 for an IPv4
// client (a tunnel to an IPv6 real server).
func ParseProcConn(r io.Reader) ([]Conn, error) {
	const src = "/proc/net/ip_vs_conn"
	out := []Conn{}
	sc := newScanner(r)
	withLocal, sawHeader := false, false
	n := 0
	for sc.Scan() {
		n++
		l := &lineErr{src: src, n: n, text: sc.Text()}
		f := strings.Fields(l.text)
		if len(f) == 0 {
			continue
		}
		if f[0] == "Pro" {
			withLocal, sawHeader = strings.Contains(l.text, "LocalIP"), true
			continue
		}
		if !sawHeader && len(f) == 11 && len(f[7]) == 8 && isHex(f[7]) && isDigits(f[10]) {
			withLocal = true // an old kernel's line without its header
		}
		var c Conn
		var rest []string
		local := false
		switch {
		case withLocal && len(f) == 11:
			local = true
			rest = f
		case !withLocal && (len(f) == 9 || len(f) == 11):
			rest = f
		case !withLocal && len(f) == 10:
			return out, l.errf("PE name without PE data: want 9 fields, or 11 with PEName PEData")
		default:
			return out, l.errf("want Pro FromIP FPrt ToIP TPrt DestIP DPrt State Expires [PEName PEData], got %d fields", len(f))
		}
		c.Proto = strings.ToLower(rest[0])
		if c.Proto == "" || strings.ContainsAny(c.Proto, ":") {
			return out, l.errf("protocol %q", rest[0])
		}
		pairs := []*string{&c.Client, &c.Virtual}
		if local {
			pairs = append(pairs, &c.Local)
		}
		pairs = append(pairs, &c.Dest)
		i := 1
		for _, p := range pairs {
			a, err := procAddr(rest[i])
			if err != nil {
				return out, l.errf("%v", err)
			}
			port, err := hexPort(rest[i+1])
			if err != nil {
				return out, l.errf("%v", err)
			}
			*p = netip.AddrPortFrom(a, port).String()
			i += 2
		}
		c.State = rest[i]
		exp, err := strconv.ParseUint(rest[i+1], 10, 32)
		if err != nil {
			return out, l.errf("expires %q is not a number of seconds", rest[i+1])
		}
		c.Expires = time.Duration(exp) * time.Second
		if len(rest) > i+2 {
			c.PEName, c.PEData = rest[i+2], rest[i+3]
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return out, scanErr(src, n, err)
	}
	return out, nil
}
