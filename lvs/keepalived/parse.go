// Package keepalived reads the LVS part of keepalived.conf: the
// virtual_server blocks (and the virtual_server_group blocks they name)
// with their real servers, into a small model that converts to the
// topology's services, and compares those with the director's IPVS
// table (Compare), which is what `check --keepalived FILE` reports.
//
// Other blocks (global_defs, vrrp_instance, vrrp_script, ...) are
// skipped. `include` lines are not followed: they are listed in
// Config.Includes and in Config.Warnings. Keyword semantics follow
// keepalived's check_parser.c and check_data.c (2.x).
package keepalived

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Pos is a place in a configuration file.
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line"`
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// Error is a problem in keepalived.conf at a place.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// Config is what lvsdoctor reads of a keepalived.conf.
type Config struct {
	File           string                 `json:"file"`
	VirtualServers []VirtualServer        `json:"virtual_servers"`
	Groups         map[string]*GroupBlock `json:"groups,omitempty"`
	Includes       []Include              `json:"includes,omitempty"`
	// Warnings are things keepalived would accept but that change what
	// it programs, or that lvsdoctor did not read; each starts with
	// file:line.
	Warnings []string `json:"warnings,omitempty"`
}

// Include is an `include` line, not followed.
type Include struct {
	Pos     Pos    `json:"pos"`
	Pattern string `json:"pattern"`
}

// VirtualServer is one virtual_server block, as written (defaults are
// applied by Services).
type VirtualServer struct {
	Pos    Pos    `json:"pos"`
	Addr   string `json:"addr,omitempty"` // "IP:PORT" for `virtual_server IP PORT` (port 0 when left out)
	Fwmark uint32 `json:"fwmark,omitempty"`
	Group  string `json:"group,omitempty"` // `virtual_server group NAME`
	// Protocol is tcp, udp or sctp; "" when not given.
	Protocol string `json:"protocol,omitempty"`
	// Scheduler is lb_algo / lvs_sched; "" when not given.
	Scheduler string `json:"scheduler,omitempty"`
	// Forward is lb_kind / lvs_method as masq, route or tunnel; "" when
	// not given.
	Forward string `json:"forward,omitempty"`
	// Persistence is persistence_timeout in seconds; nil when not given.
	Persistence *uint32  `json:"persistence,omitempty"`
	Granularity string   `json:"granularity,omitempty"` // persistence_granularity
	DelayLoop   string   `json:"delay_loop,omitempty"`
	Flags       []string `json:"flags,omitempty"` // ops, sh-port, sh-fallback, flag-N, hashed
	// Weight is the virtual server's default real server weight
	// (`weight` in the virtual_server block); nil when not given.
	Weight      *int         `json:"weight,omitempty"`
	RealServers []RealServer `json:"real_servers"`
	SorryServer *RealServer  `json:"sorry_server,omitempty"`
}

// RealServer is one real_server block (or the sorry_server line).
type RealServer struct {
	Pos  Pos    `json:"pos"`
	Addr string `json:"addr"` // "IP:PORT" (port 0 when left out)
	// Weight is nil when not given (then the virtual server's, else 1).
	Weight *int `json:"weight,omitempty"`
	// Forward is lvs_method of the real server, "" to inherit.
	Forward    string   `json:"forward,omitempty"`
	UThreshold uint32   `json:"uthreshold,omitempty"`
	LThreshold uint32   `json:"lthreshold,omitempty"`
	Inhibit    bool     `json:"inhibit_on_failure,omitempty"`
	Checkers   []string `json:"checkers,omitempty"` // TCP_CHECK, HTTP_GET, ...
}

// GroupBlock is a virtual_server_group: addresses, ranges and fwmarks.
type GroupBlock struct {
	Pos     Pos          `json:"pos"`
	Entries []GroupEntry `json:"entries"`
}

// GroupEntry is one line of a virtual_server_group: an address (or a
// range in its last part, "10.0.0.1-10") with a port, or an fwmark.
type GroupEntry struct {
	Pos    Pos      `json:"pos"`
	Addrs  []string `json:"addrs,omitempty"` // IP:PORT each
	Fwmark uint32   `json:"fwmark,omitempty"`
}

// maxDepth bounds block nesting (keepalived's own configs nest 3 deep).
const maxDepth = 32

// maxRange bounds the addresses one group range expands to.
const maxRange = 256

// Load reads and parses path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, b)
}

// Parse reads data; name is used in positions.
func Parse(name string, data []byte) (*Config, error) {
	toks, err := lex(name, string(data))
	if err != nil {
		return nil, err
	}
	p := &parser{name: name, toks: toks}
	nodes, err := p.block(0, Pos{})
	if err != nil {
		return nil, err
	}
	c := &Config{File: name, VirtualServers: []VirtualServer{}}
	for _, n := range nodes {
		if err := c.top(n); err != nil {
			return nil, err
		}
	}
	for _, vs := range c.VirtualServers {
		if vs.Group != "" && c.Groups[vs.Group] == nil {
			return nil, &Error{vs.Pos, fmt.Sprintf("virtual_server group %q: no virtual_server_group of that name", vs.Group)}
		}
	}
	c.defaultsWarnings()
	return c, nil
}

type token struct {
	text string
	line int
}

// lex splits keepalived.conf as its parser does: words separated by
// blanks; `{` and `}` are words of their own; a word starting with `#`
// or `!` starts a comment to the end of the line; "double quotes" make
// one word.
func lex(name, s string) ([]token, error) {
	var out []token
	line := 1
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '#' || c == '!':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '{' || c == '}':
			out = append(out, token{string(c), line})
			i++
		case c == '"':
			j := strings.IndexAny(s[i+1:], "\"\n")
			if j < 0 || s[i+1+j] != '"' {
				return nil, &Error{Pos{name, line}, "unterminated \"quoted string\""}
			}
			out = append(out, token{s[i+1 : i+1+j], line})
			i += j + 2
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n\f\v{}\"", rune(s[j])) {
				j++
			}
			out = append(out, token{s[i:j], line})
			i = j
		}
	}
	return out, nil
}

// node is a statement: a keyword, its arguments, and its block if any.
type node struct {
	pos      Pos
	kw       string
	args     []string
	block    []*node
	hasBlock bool
}

type parser struct {
	name string
	toks []token
	i    int
}

func (p *parser) block(depth int, open Pos) ([]*node, error) {
	if depth > maxDepth {
		return nil, &Error{open, fmt.Sprintf("blocks nested deeper than %d", maxDepth)}
	}
	var out []*node
	for p.i < len(p.toks) {
		t := p.toks[p.i]
		switch t.text {
		case "}":
			p.i++
			if depth == 0 {
				return nil, &Error{Pos{p.name, t.line}, "`}` without a block to close"}
			}
			return out, nil
		case "{":
			// a block opened on the line after its keyword
			p.i++
			if len(out) == 0 || out[len(out)-1].hasBlock {
				return nil, &Error{Pos{p.name, t.line}, "`{` without a keyword before it"}
			}
			last := out[len(out)-1]
			b, err := p.block(depth+1, last.pos)
			if err != nil {
				return nil, err
			}
			last.block, last.hasBlock = b, true
			continue
		}
		n := &node{pos: Pos{p.name, t.line}, kw: t.text}
		p.i++
		for p.i < len(p.toks) && p.toks[p.i].line == t.line && p.toks[p.i].text != "{" && p.toks[p.i].text != "}" {
			n.args = append(n.args, p.toks[p.i].text)
			p.i++
		}
		if p.i < len(p.toks) && p.toks[p.i].text == "{" && p.toks[p.i].line == t.line {
			p.i++
			b, err := p.block(depth+1, n.pos)
			if err != nil {
				return nil, err
			}
			n.block, n.hasBlock = b, true
		}
		out = append(out, n)
	}
	if depth > 0 {
		return nil, &Error{open, "block is not closed: a `}` is missing"}
	}
	return out, nil
}

func (c *Config) warnf(pos Pos, format string, args ...any) {
	c.Warnings = append(c.Warnings, pos.String()+": "+fmt.Sprintf(format, args...))
}

func (c *Config) top(n *node) error {
	if strings.HasPrefix(n.kw, "@") {
		// conditional configuration: `@name keyword ...`
		c.warnf(n.pos, "conditional line %s is read as if it applied to this instance", n.kw)
		if len(n.args) == 0 {
			return nil
		}
		n = &node{pos: n.pos, kw: n.args[0], args: n.args[1:], block: n.block, hasBlock: n.hasBlock}
	}
	switch {
	case n.kw == "include":
		if len(n.args) == 0 {
			return &Error{n.pos, "include without a file"}
		}
		c.Includes = append(c.Includes, Include{n.pos, strings.Join(n.args, " ")})
		c.warnf(n.pos, "include %s is not followed: give the included files too if they hold virtual servers", strings.Join(n.args, " "))
	case strings.HasPrefix(n.kw, "$"):
		c.warnf(n.pos, "parameter %s is not expanded", strings.SplitN(n.kw, "=", 2)[0])
	case n.kw == "virtual_server":
		vs, err := c.virtualServer(n)
		if err != nil {
			return err
		}
		c.VirtualServers = append(c.VirtualServers, vs)
	case n.kw == "virtual_server_group":
		return c.group(n)
	}
	return nil
}

func needBlock(n *node) error {
	if !n.hasBlock {
		return &Error{n.pos, n.kw + " needs a { ... } block"}
	}
	return nil
}

func (c *Config) virtualServer(n *node) (VirtualServer, error) {
	vs := VirtualServer{Pos: n.pos, RealServers: []RealServer{}}
	if err := needBlock(n); err != nil {
		return vs, err
	}
	switch {
	case len(n.args) == 2 && n.args[0] == "fwmark":
		m, err := strconv.ParseUint(n.args[1], 10, 32)
		if err != nil || m == 0 {
			return vs, &Error{n.pos, fmt.Sprintf("virtual_server fwmark %q: want a number > 0", n.args[1])}
		}
		vs.Fwmark = uint32(m)
	case len(n.args) == 2 && n.args[0] == "group":
		vs.Group = n.args[1]
	case len(n.args) == 1 || len(n.args) == 2:
		port := "0"
		if len(n.args) == 2 {
			port = n.args[1]
		}
		a, err := addrPort(n.args[0], port)
		if err != nil {
			return vs, &Error{n.pos, "virtual_server " + err.Error()}
		}
		vs.Addr = a
	default:
		return vs, &Error{n.pos, "virtual_server: want `virtual_server IP PORT {`, `virtual_server fwmark N {` or `virtual_server group NAME {`"}
	}
	for _, k := range n.block {
		arg := func() (string, error) {
			if len(k.args) == 0 {
				return "", &Error{k.pos, k.kw + " needs a value"}
			}
			return k.args[0], nil
		}
		var err error
		var v string
		switch k.kw {
		case "lb_algo", "lvs_sched":
			vs.Scheduler, err = arg()
		case "lb_kind", "lvs_method":
			if v, err = arg(); err == nil {
				vs.Forward, err = forward(k, v)
			}
		case "protocol":
			if v, err = arg(); err == nil {
				switch strings.ToUpper(v) {
				case "TCP", "UDP", "SCTP":
					vs.Protocol = strings.ToLower(v)
				default:
					err = &Error{k.pos, fmt.Sprintf("protocol %q: valid are TCP, UDP, SCTP", v)}
				}
			}
		case "persistence_timeout":
			t := uint32(360) // IPVS_SVC_PERSISTENT_TIMEOUT, keepalived's default for a bare keyword
			if len(k.args) > 0 {
				x, perr := strconv.ParseUint(k.args[0], 10, 32)
				if perr != nil || x == 0 {
					return vs, &Error{k.pos, fmt.Sprintf("persistence_timeout %q: want seconds > 0", k.args[0])}
				}
				t = uint32(x)
			}
			vs.Persistence = &t
		case "persistence_granularity":
			vs.Granularity, err = arg()
			if vs.Persistence == nil {
				t := uint32(360)
				vs.Persistence = &t
			}
		case "delay_loop":
			vs.DelayLoop, err = arg()
		case "hashed", "ops", "flag-1", "flag-2", "flag-3", "sh-port", "sh-fallback", "mh-port", "mh-fallback":
			vs.Flags = append(vs.Flags, k.kw)
		case "weight":
			if v, err = arg(); err == nil {
				var w int
				if w, err = weight(k, v); err == nil {
					vs.Weight = &w
				}
			}
		case "real_server":
			var rs RealServer
			if rs, err = c.realServer(k); err == nil {
				vs.RealServers = append(vs.RealServers, rs)
			}
		case "sorry_server":
			if len(k.args) < 1 {
				return vs, &Error{k.pos, "sorry_server needs IP [PORT]"}
			}
			port := "0"
			if len(k.args) > 1 {
				port = k.args[1]
			}
			a, aerr := addrPort(k.args[0], port)
			if aerr != nil {
				return vs, &Error{k.pos, "sorry_server " + aerr.Error()}
			}
			vs.SorryServer = &RealServer{Pos: k.pos, Addr: a}
		case "sorry_server_lvs_method":
			if vs.SorryServer == nil {
				return vs, &Error{k.pos, "sorry_server_lvs_method before sorry_server"}
			}
			if v, err = arg(); err == nil {
				vs.SorryServer.Forward, err = forward(k, v)
			}
		}
		if err != nil {
			return vs, err
		}
	}
	return vs, nil
}

// checkers are the health checker blocks of a real_server.
var checkers = map[string]bool{"TCP_CHECK": true, "HTTP_GET": true, "SSL_GET": true, "MISC_CHECK": true,
	"SMTP_CHECK": true, "DNS_CHECK": true, "UDP_CHECK": true, "PING_CHECK": true, "FILE_CHECK": true, "BFD_CHECK": true}

func (c *Config) realServer(n *node) (RealServer, error) {
	rs := RealServer{Pos: n.pos}
	if len(n.args) < 1 || len(n.args) > 2 {
		return rs, &Error{n.pos, "real_server: want `real_server IP PORT {`"}
	}
	port := "0"
	if len(n.args) == 2 {
		port = n.args[1]
	}
	a, err := addrPort(n.args[0], port)
	if err != nil {
		return rs, &Error{n.pos, "real_server " + err.Error()}
	}
	rs.Addr = a
	for _, k := range n.block {
		var err error
		switch {
		case k.kw == "weight":
			if len(k.args) == 0 {
				return rs, &Error{k.pos, "weight needs a value"}
			}
			var w int
			if w, err = weight(k, k.args[0]); err == nil {
				rs.Weight = &w
			}
		case k.kw == "lvs_method" || k.kw == "lb_kind":
			if len(k.args) == 0 {
				return rs, &Error{k.pos, k.kw + " needs a value"}
			}
			rs.Forward, err = forward(k, k.args[0])
		case k.kw == "uthreshold" || k.kw == "lthreshold":
			if len(k.args) == 0 {
				return rs, &Error{k.pos, k.kw + " needs a value"}
			}
			v, perr := strconv.ParseUint(k.args[0], 10, 32)
			if perr != nil {
				return rs, &Error{k.pos, fmt.Sprintf("%s %q is not a number", k.kw, k.args[0])}
			}
			if k.kw == "uthreshold" {
				rs.UThreshold = uint32(v)
			} else {
				rs.LThreshold = uint32(v)
			}
		case k.kw == "inhibit_on_failure":
			rs.Inhibit = len(k.args) == 0 || k.args[0] == "true" || k.args[0] == "on" || k.args[0] == "yes"
		case checkers[k.kw]:
			rs.Checkers = append(rs.Checkers, k.kw)
		}
		if err != nil {
			return rs, err
		}
	}
	return rs, nil
}

func (c *Config) group(n *node) error {
	if err := needBlock(n); err != nil {
		return err
	}
	if len(n.args) != 1 {
		return &Error{n.pos, "virtual_server_group: want `virtual_server_group NAME {`"}
	}
	if c.Groups == nil {
		c.Groups = map[string]*GroupBlock{}
	}
	g := &GroupBlock{Pos: n.pos}
	for _, k := range n.block {
		e := GroupEntry{Pos: k.pos}
		if k.kw == "fwmark" {
			if len(k.args) != 1 {
				return &Error{k.pos, "fwmark needs a number"}
			}
			m, err := strconv.ParseUint(k.args[0], 10, 32)
			if err != nil || m == 0 {
				return &Error{k.pos, fmt.Sprintf("fwmark %q: want a number > 0", k.args[0])}
			}
			e.Fwmark = uint32(m)
		} else {
			port := "0"
			if len(k.args) > 0 {
				port = k.args[0]
			}
			addrs, err := rangeAddrs(k.kw, port)
			if err != nil {
				return &Error{k.pos, err.Error()}
			}
			e.Addrs = addrs
		}
		g.Entries = append(g.Entries, e)
	}
	c.Groups[n.args[0]] = g
	return nil
}

// rangeAddrs expands "10.0.0.1-10" (the last part of the address is a
// range) or a single address, each with port.
func rangeAddrs(s, port string) ([]string, error) {
	base, last, isRange := strings.Cut(s, "-")
	if !isRange {
		a, err := addrPort(s, port)
		if err != nil {
			return nil, err
		}
		return []string{a}, nil
	}
	first, err := netip.ParseAddr(base)
	if err != nil || first.Zone() != "" {
		return nil, fmt.Errorf("address range %q: %q is not an IP address", s, base)
	}
	p, err := parsePort(port)
	if err != nil {
		return nil, err
	}
	bits := 8
	if first.Is6() {
		bits = 16
	}
	end, err := strconv.ParseUint(last, map[bool]int{true: 16, false: 10}[first.Is6()], bits)
	if err != nil {
		return nil, fmt.Errorf("address range %q: end %q is not a number", s, last)
	}
	b := first.AsSlice()
	var start uint64
	if first.Is6() {
		start = uint64(b[14])<<8 | uint64(b[15])
	} else {
		start = uint64(b[3])
	}
	if end < start || end-start >= maxRange {
		return nil, fmt.Errorf("address range %q: end before start, or more than %d addresses", s, maxRange)
	}
	var out []string
	for v := start; v <= end; v++ {
		if first.Is6() {
			b[14], b[15] = byte(v>>8), byte(v)
		} else {
			b[3] = byte(v)
		}
		a, _ := netip.AddrFromSlice(b)
		out = append(out, netip.AddrPortFrom(a, p).String())
	}
	return out, nil
}

func parsePort(s string) (uint16, error) {
	v, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("port %q is not a number 0..65535", s)
	}
	return uint16(v), nil
}

func addrPort(ip, port string) (string, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" {
		return "", fmt.Errorf("%q is not an IP address", ip)
	}
	p, err := parsePort(port)
	if err != nil {
		return "", err
	}
	return netip.AddrPortFrom(a.Unmap(), p).String(), nil
}

func weight(k *node, v string) (int, error) {
	w, err := strconv.Atoi(v)
	if err != nil || w < 0 || w > 65535 {
		return 0, &Error{k.pos, fmt.Sprintf("weight %q: want 0..65535", v)}
	}
	return w, nil
}

func forward(k *node, v string) (string, error) {
	switch v {
	case "NAT":
		return "masq", nil
	case "DR":
		return "route", nil
	case "TUN":
		return "tunnel", nil
	}
	return "", &Error{k.pos, fmt.Sprintf("%s %q: valid are NAT, DR, TUN", k.kw, v)}
}
