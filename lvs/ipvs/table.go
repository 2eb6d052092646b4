// Package ipvs reads a director's IPVS table: over netlink (the kernel's
// own answer), from /proc/net/ip_vs and /proc/net/ip_vs_conn, and from the
// text that `ipvsadm -Ln` (with --stats, --rate, --thresholds or
// --persistent-conn) and `ipvsadm -Sn` / `ipvsadm-save -n` print, so that
// a table recorded by an operator can be read as well as a live one.
//
// Every source gives a Table; Table.Obs converts it to the observation
// the checks use (obs.IPVSTable). The text parsers never panic on bad
// input and name the line they could not read.
package ipvs

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// Table is the director's virtual service table.
type Table struct {
	// Version is the IPVS version ("1.2.1"); "" when the source does not say.
	Version string `json:"version,omitempty"`
	// ConnTableSize is the connection hash table size of the
	// "IP Virtual Server version 1.2.1 (size=4096)" line; 0 when unknown.
	ConnTableSize int `json:"conn_table_size,omitempty"`
	// Timeouts (tcp, tcpfin, udp) come from netlink only; nil otherwise.
	Timeouts *obs.IPVSTimeouts `json:"timeouts,omitempty"`
	Services []Service         `json:"services"`
}

// Service is one virtual service. Which fields are known depends on the
// source: see the parser of each.
type Service struct {
	Proto string `json:"proto"`          // tcp, udp, sctp, fwmark
	Addr  string `json:"addr,omitempty"` // VIP:VPORT ([v6]:port); "" for fwmark
	Mark  uint32 `json:"mark,omitempty"`
	// IPv6 is set for a service of the IPv6 family (an fwmark service
	// says so only by this).
	IPv6      bool   `json:"ipv6,omitempty"`
	Scheduler string `json:"scheduler,omitempty"` // "" when the source does not show it (--stats, --rate)
	// Flags are the service flags besides persistence: "ops" (one-packet
	// scheduling) and the scheduler flags (sh-fallback, sh-port,
	// mh-fallback, mh-port, flag-1, flag-2, flag-3).
	Flags      []string `json:"flags,omitempty"`
	Persistent bool     `json:"persistent"`
	// Timeout is the persistence timeout in seconds; 0 when not persistent,
	// or from /proc/net/ip_vs until SetHZ (see TimeoutJiffies).
	Timeout uint32 `json:"timeout,omitempty"`
	// TimeoutJiffies is the persistence timeout as /proc/net/ip_vs prints
	// it: in kernel ticks (seconds × CONFIG_HZ), not seconds.
	TimeoutJiffies uint32 `json:"timeout_jiffies,omitempty"`
	// Netmask is the persistence granularity: a dotted IPv4 mask
	// ("255.255.255.255" is per client address) or "/N" for IPv6.
	Netmask string `json:"netmask,omitempty"`
	// PE is the persistence engine ("sip"), when one is set.
	PE    string `json:"pe,omitempty"`
	Dests []Dest `json:"dests"`
	Stats *Stats `json:"stats,omitempty"`
}

// Dest is one real server of a service.
type Dest struct {
	Addr    string `json:"addr"`    // RIP:RPORT
	Forward string `json:"forward"` // masq, route, tunnel, local, bypass; "" when not shown
	Weight  int    `json:"weight"`  // -1 when the source does not show it
	// ActiveC and InactiveC are -1 when the source does not show them
	// (--stats, --rate, ipvsadm -Sn).
	ActiveC   int `json:"active"`
	InactiveC int `json:"inactive"`
	// PersistC is the count of persistence templates pointing here;
	// -1 when not shown (only --persistent-conn and netlink show it).
	PersistC int `json:"persistent_conns"`
	// UThreshold and LThreshold are the upper and lower connection
	// thresholds (ipvsadm -x, -y); 0 is none.
	UThreshold uint32 `json:"u_threshold,omitempty"`
	LThreshold uint32 `json:"l_threshold,omitempty"`
	// Tunnel is the tunnel type of a tunnel destination (ipip, gue, gre)
	// when the source shows it.
	Tunnel string `json:"tunnel,omitempty"`
	Stats  *Stats `json:"stats,omitempty"`
}

// Stats are the counters of --stats or the rates of --rate (or both,
// from netlink). Values printed with a K/M/G/T suffix are scaled back and
// so only approximate.
type Stats struct {
	Conns    uint64 `json:"conns"`
	InPkts   uint64 `json:"in_pkts"`
	OutPkts  uint64 `json:"out_pkts"`
	InBytes  uint64 `json:"in_bytes"`
	OutBytes uint64 `json:"out_bytes"`
	CPS      uint64 `json:"cps"`
	InPPS    uint64 `json:"in_pps"`
	OutPPS   uint64 `json:"out_pps"`
	InBPS    uint64 `json:"in_bps"`
	OutBPS   uint64 `json:"out_bps"`
}

// String names the service as findings do: "tcp 203.0.113.100:80",
// "fwmark 1".
func (s Service) String() string {
	if s.Proto == "fwmark" {
		return fmt.Sprintf("fwmark %d", s.Mark)
	}
	return s.Proto + " " + s.Addr
}

// Find returns the service with the same identity (protocol and address,
// or mark and family), or nil.
func (t *Table) Find(proto, addr string, mark uint32) *Service {
	for i := range t.Services {
		s := &t.Services[i]
		if s.Proto != proto {
			continue
		}
		if proto == "fwmark" {
			if s.Mark == mark {
				return s
			}
			continue
		}
		if sameAddrPort(s.Addr, addr) {
			return s
		}
	}
	return nil
}

// Dest returns the destination with address addr, or nil.
func (s *Service) Dest(addr string) *Dest {
	for i := range s.Dests {
		if sameAddrPort(s.Dests[i].Addr, addr) {
			return &s.Dests[i]
		}
	}
	return nil
}

func sameAddrPort(a, b string) bool {
	if a == b {
		return true
	}
	x, err1 := netip.ParseAddrPort(a)
	y, err2 := netip.ParseAddrPort(b)
	return err1 == nil && err2 == nil && x == y
}

// SetHZ fills Timeout of services read from /proc/net/ip_vs, whose
// persistence timeouts are in kernel ticks: hz is the kernel's CONFIG_HZ
// (Debian and Ubuntu kernels use 250, RHEL and Fedora 1000). The netlink
// reader and the ipvsadm parsers give seconds already.
func (t *Table) SetHZ(hz int) {
	if hz <= 0 {
		return
	}
	for i := range t.Services {
		s := &t.Services[i]
		if s.TimeoutJiffies != 0 {
			s.Timeout = s.TimeoutJiffies / uint32(hz)
		}
	}
}

// Obs converts the table to the observation the checks use.
func (t *Table) Obs() *obs.IPVSTable {
	o := &obs.IPVSTable{Services: []obs.IPVSService{}}
	if t == nil {
		return o
	}
	o.Version, o.ConnTableSize, o.Timeouts = t.Version, t.ConnTableSize, t.Timeouts
	for _, s := range t.Services {
		os := obs.IPVSService{Proto: s.Proto, Addr: s.Addr, Mark: s.Mark, Scheduler: s.Scheduler,
			Persistent: s.Persistent, Dests: []obs.IPVSDest{}}
		for _, d := range s.Dests {
			os.Dests = append(os.Dests, obs.IPVSDest{Addr: d.Addr, Forward: d.Forward, Weight: d.Weight,
				ActiveC: max(d.ActiveC, 0), InactiveC: max(d.InactiveC, 0)})
		}
		o.Services = append(o.Services, os)
	}
	return o
}

// ParseVersionLine reads "IP Virtual Server version 1.2.1 (size=4096)",
// the first line of /proc/net/ip_vs and of `ipvsadm -Ln`.
func ParseVersionLine(line string) (version string, size int, err error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "IP Virtual Server version ")
	if !ok {
		return "", 0, fmt.Errorf("not an IPVS version line: %q", line)
	}
	version, rest, _ = strings.Cut(rest, " ")
	if !validVersion(version) {
		return "", 0, fmt.Errorf("version %q is not N.N.N", version)
	}
	rest = strings.TrimSpace(rest)
	if rest == "" {
		return version, 0, nil
	}
	n, ok := strings.CutPrefix(rest, "(size=")
	n, ok2 := strings.CutSuffix(n, ")")
	if !ok || !ok2 {
		return "", 0, fmt.Errorf("expected (size=N) after the version, got %q", rest)
	}
	size, err = strconv.Atoi(n)
	if err != nil || size < 0 {
		return "", 0, fmt.Errorf("connection table size %q is not a number", n)
	}
	return version, size, nil
}

func validVersion(v string) bool {
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if _, err := strconv.ParseUint(p, 10, 8); err != nil {
			return false
		}
	}
	return true
}

// ParseError is a line a parser could not read.
type ParseError struct {
	Source string // "/proc/net/ip_vs", "ipvsadm -Ln", ...
	Line   int
	Text   string
	Msg    string
}

func (e *ParseError) Error() string {
	t := e.Text
	if len(t) > 120 {
		t = t[:120] + "..."
	}
	return fmt.Sprintf("%s line %d: %s: %q", e.Source, e.Line, e.Msg, t)
}

// lineErr makes ParseErrors for one input line.
type lineErr struct {
	src  string
	n    int
	text string
}

func (l *lineErr) errf(format string, args ...any) error {
	return &ParseError{Source: l.src, Line: l.n, Text: l.text, Msg: fmt.Sprintf(format, args...)}
}

// schedFlagNames names the scheduler flag bits 1..3 as ipvsadm does.
func schedFlagNames(sched string, bits uint32) []string {
	var names [3]string
	switch sched {
	case "sh":
		names = [3]string{"sh-fallback", "sh-port", "flag-3"}
	case "mh":
		names = [3]string{"mh-fallback", "mh-port", "flag-3"}
	default:
		names = [3]string{"flag-1", "flag-2", "flag-3"}
	}
	var out []string
	for i := range 3 {
		if bits&(1<<i) != 0 {
			out = append(out, names[i])
		}
	}
	return out
}

// forwardName maps the kernel's and ipvsadm's names (Masq, Route,
// Tunnel, Local, Bypass) to the project's words.
func forwardName(s string) (string, bool) {
	switch strings.ToLower(s) {
	case "masq":
		return "masq", true
	case "route":
		return "route", true
	case "tunnel":
		return "tunnel", true
	case "local":
		return "local", true
	case "bypass":
		return "bypass", true
	}
	return "", false
}

// parseNumericAddrPort reads "1.2.3.4:80" or "[2001:db8::1]:80" as ipvsadm -n
// prints them; a name means ipvsadm ran without -n.
func parseNumericAddrPort(s string) (string, bool, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		if h, p, ok := strings.Cut(s, ":"); ok && h != "" && !strings.HasPrefix(s, "[") {
			if _, aerr := netip.ParseAddr(h); aerr != nil {
				return "", false, fmt.Errorf("address %q is a name, not a number: run ipvsadm with -n", s)
			}
			if _, perr := strconv.ParseUint(p, 10, 16); perr != nil {
				return "", false, fmt.Errorf("port of %q is a name or out of range: run ipvsadm with -n", s)
			}
		}
		return "", false, fmt.Errorf("address %q is not IP:PORT", s)
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	return ap.String(), ap.Addr().Is6(), nil
}
