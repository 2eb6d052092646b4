// Package topology reads the cluster description of DESIGN.md ("Topology
// file"): who the client, the director and the real servers are, how to
// reach each, and which virtual services the director should run.
//
// Errors name the file, line and column and say what would be valid: an
// operator at 3 a.m. fixes the file from the message alone.
package topology

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

type Topology struct {
	Client   Host      `yaml:"client"`
	Director Host      `yaml:"director"`
	Services []Service `yaml:"services"`
	// Source is where the services came from when not from a topology
	// file (check --keepalived, check --director); never in the file.
	Source *Source `yaml:"-" json:",omitempty"`
}

// Source says where a topology's services came from, which decides what a
// difference from the director's table means.
type Source struct {
	// Kind is "keepalived" (File is keepalived.conf) or "table" (read from
	// the director's own table).
	Kind string
	File string `json:",omitempty"`
	// Complete says the services are everything the operator meant the
	// director to run, so a service in the table but not here is a
	// difference (a topology file may list only the services to check).
	Complete bool
	// RemovedOnFailure lists the real servers (RIP:RPORT) that keepalived
	// takes out of the table when their health check fails (no
	// inhibit_on_failure): their connections then lose their entry.
	RemovedOnFailure []string `json:",omitempty"`
}

// Host is a machine the check runs probes on.
type Host struct {
	Name    string `yaml:"name,omitempty"`
	Host    string `yaml:"host"`
	Address string `yaml:"address,omitempty"`
}

type Service struct {
	VIP   string `yaml:"vip"`
	Proto string `yaml:"proto"`
	Mark  uint32 `yaml:"mark,omitempty"`
	// Ports, with proto fwmark, are what the check tests the service
	// with: "8080" (tcp), "tcp/8080" or "udp/500", each to the VIP (which
	// may then be a bare address). A real server's address without a
	// port takes the first of them.
	Ports       []string     `yaml:"ports,omitempty"`
	Scheduler   string       `yaml:"scheduler,omitempty"`
	Persistent  bool         `yaml:"persistent,omitempty"`
	RealServers []RealServer `yaml:"realservers"`
}

type RealServer struct {
	Address string `yaml:"address"`
	Name    string `yaml:"name,omitempty"`
	Host    string `yaml:"host"`
	Forward string `yaml:"forward,omitempty"`
	Weight  *int   `yaml:"weight,omitempty"`
}

// Label is how findings and steps name a host: its name, else its host string.
func (h Host) Label() string {
	if h.Name != "" {
		return h.Name
	}
	return h.Host
}

func (r RealServer) Label() string {
	if r.Name != "" {
		return r.Name
	}
	return r.Host
}

// AsHost gives the real server as a Host with its RIP as address.
func (r RealServer) AsHost() Host {
	return Host{Name: r.Label(), Host: r.Host, Address: r.AddrPort().Addr().String()}
}

// AddrPort is RIP:RPORT; valid after Parse.
func (r RealServer) AddrPort() netip.AddrPort {
	ap, _ := parseAddrPort(r.Address, 0)
	return ap
}

// W is the weight, 1 when not given.
func (r RealServer) W() int {
	if r.Weight == nil {
		return 1
	}
	return *r.Weight
}

// VIPPort is VIP:VPORT; valid after Parse. A firewall-mark service's vip
// may be a bare address: the port is 0 then.
func (s Service) VIPPort() netip.AddrPort {
	if ap, err := parseAddrPort(s.VIP, 0); err == nil {
		return ap
	}
	if a, err := netip.ParseAddr(s.VIP); err == nil && a.Is4() {
		return netip.AddrPortFrom(a, 0)
	}
	return netip.AddrPort{}
}

// Test is one kind of test connection to a service: protocol and
// VIP:PORT.
type Test struct {
	Proto string // tcp, udp
	Dst   netip.AddrPort
}

// Tests lists the test connections a service takes: its own protocol to
// VIP:VPORT, or, for a firewall-mark service, each of its ports.
func (s Service) Tests() []Test {
	vip := s.VIPPort()
	if s.Proto == "tcp" || s.Proto == "udp" {
		return []Test{{Proto: s.Proto, Dst: vip}}
	}
	var out []Test
	for _, p := range s.Ports {
		proto, port, err := parsePortSpec(p)
		if err == nil && vip.Addr().IsValid() {
			out = append(out, Test{Proto: proto, Dst: netip.AddrPortFrom(vip.Addr(), port)})
		}
	}
	return out
}

// parsePortSpec reads "8080" (tcp), "tcp/8080" or "udp/500".
func parsePortSpec(s string) (string, uint16, error) {
	proto, num, ok := strings.Cut(s, "/")
	if !ok {
		proto, num = "tcp", s
	}
	if proto != "tcp" && proto != "udp" {
		return "", 0, fmt.Errorf("protocol %q: valid are tcp and udp", proto)
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("%q is not a port (1..65535)", num)
	}
	return proto, uint16(n), nil
}

// String is the service as steps and findings name it: "tcp 203.0.113.100:80".
func (s Service) String() string {
	if s.Proto == "fwmark" {
		return fmt.Sprintf("fwmark %d", s.Mark)
	}
	return s.Proto + " " + s.VIP
}

// ClientAddr is the CIP; valid after Parse when the file gave one.
func (t *Topology) ClientAddr() netip.Addr {
	a, _ := netip.ParseAddr(t.Client.Address)
	return a
}

// Error is a problem in a topology file, at a place in it.
type Error struct {
	File   string
	Line   int
	Column int
	Msg    string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Load reads and validates a topology file.
func Load(path string) (*Topology, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Msg: err.Error()}
	}
	return Parse(path, b)
}

// Parse decodes and validates data; name is used in error messages.
func Parse(name string, data []byte) (t *Topology, err error) {
	// The YAML library is outside code fed with a user's file: a panic in
	// it becomes an error naming the file, never a crash at 3 a.m.
	defer func() {
		if r := recover(); r != nil {
			t, err = nil, &Error{File: name, Msg: fmt.Sprintf("the YAML decoder failed on this file (%v); check its indentation and quoting", r)}
		}
	}()
	file, perr := parser.ParseBytes(data, 0)
	if perr != nil {
		return nil, decodeError(name, perr)
	}
	// A topology has no use for YAML tags, and go-yaml v1.19.2 dereferences
	// nil decoding some tagged values into a list (found by FuzzParse):
	// refuse them with their position before the decoder sees them.
	for _, doc := range file.Docs {
		if doc == nil || doc.Body == nil {
			continue
		}
		if tags := ast.Filter(ast.TagType, doc.Body); len(tags) > 0 {
			tok := tags[0].GetToken()
			return nil, &Error{File: name, Line: tok.Position.Line, Column: tok.Position.Column,
				Msg: fmt.Sprintf("YAML tag %q: a topology file takes plain values, without tags", tok.Value)}
		}
	}
	// Decoded from the tree just parsed, not from the bytes again: the
	// parse is most of the time (a 50-server file: 18.7 ms to decode it
	// twice, before any host is reached).
	if len(file.Docs) == 0 || file.Docs[0] == nil || file.Docs[0].Body == nil {
		return nil, decodeError(name, io.EOF)
	}
	t = new(Topology)
	dec := yaml.NewDecoder(bytes.NewReader(nil), yaml.Strict())
	if err := dec.DecodeFromNode(file.Docs[0].Body, t); err != nil {
		return nil, decodeError(name, err)
	}
	v := validator{name: name, file: file}
	v.topology(t)
	if v.err != nil {
		return nil, v.err
	}
	return t, nil
}

// decodeError turns go-yaml's multi-line, source-quoting error into one
// file:line:column message with a hint of the valid fields.
func decodeError(name string, err error) error {
	var ye yaml.Error
	if errors.As(err, &ye) {
		tok := ye.GetToken()
		msg := ye.GetMessage()
		if strings.Contains(msg, "unknown field") {
			msg += validFields
		}
		if tok != nil && tok.Position != nil {
			return &Error{File: name, Line: tok.Position.Line, Column: tok.Position.Column, Msg: msg}
		}
		return &Error{File: name, Msg: msg}
	}
	if errors.Is(err, io.EOF) {
		return &Error{File: name, Msg: "empty file: a topology needs client, director and services (see DESIGN.md, Topology file)"}
	}
	return &Error{File: name, Msg: err.Error()}
}

// validFields is appended to "unknown field" errors: the sets are short,
// so naming all of them is still one readable line.
const validFields = "; valid fields: client, director, services; in a host: name, host, address; " +
	"in a service: vip, proto, mark, ports, scheduler, persistent, realservers; " +
	"in a real server: address, name, host, forward, weight"

type validator struct {
	name string
	file *ast.File
	err  error
}

// at reports a problem at the YAML path (e.g. "$.services[0].vip"); the
// first problem wins, so the operator gets one message.
func (v *validator) at(path, format string, args ...any) {
	if v.err != nil {
		return
	}
	e := &Error{File: v.name, Msg: fmt.Sprintf(format, args...)}
	if p, err := yaml.PathString(path); err == nil && v.file != nil {
		if n, err := p.FilterFile(v.file); err == nil && n != nil {
			if tk := n.GetToken(); tk != nil && tk.Position != nil {
				e.Line, e.Column = tk.Position.Line, tk.Position.Column
			}
		}
	}
	if e.Line == 0 {
		// The field is absent: point at its parent instead.
		if i := strings.LastIndexAny(path, ".["); i > 1 {
			if p, err := yaml.PathString(path[:i]); err == nil && v.file != nil {
				if n, err := p.FilterFile(v.file); err == nil && n != nil {
					if tk := n.GetToken(); tk != nil && tk.Position != nil {
						e.Line, e.Column = tk.Position.Line, tk.Position.Column
					}
				}
			}
		}
	}
	v.err = e
}

func (v *validator) topology(t *Topology) {
	if t.Director.Host == "" {
		v.at("$.director", "missing director: give `director: {host: netns:NAME | ssh://[user@]host[:port] | user@host | local}`")
		return
	}
	v.host("$.director", t.Director)
	if t.Client.Host == "" {
		v.at("$.client", "missing client: give `client: {host: ..., address: CIP}`; the test connections start there")
	}
	v.host("$.client", t.Client)
	if t.Client.Address != "" {
		if _, err := netip.ParseAddr(t.Client.Address); err != nil {
			v.at("$.client.address", "address %q is not an IPv4 address (e.g. 203.0.113.10)", t.Client.Address)
		}
	}
	if len(t.Services) == 0 {
		v.at("$.services", "no services: give at least one `- vip: VIP:PORT` with realservers")
	}
	for i := range t.Services {
		v.service(fmt.Sprintf("$.services[%d]", i), &t.Services[i])
	}
}

var hostForms = "netns:NAME, ssh://[user@]host[:port], user@host, an ~/.ssh/config alias, or local"

func (v *validator) host(path string, h Host) {
	if h.Host == "" {
		v.at(path+".host", "missing host: how to reach it (%s)", hostForms)
		return
	}
	if err := ValidHost(h.Host); err != nil {
		v.at(path+".host", "%v", err)
	}
}

// ValidHost checks the form of a host string (DESIGN.md, Reaching hosts).
func ValidHost(s string) error {
	switch {
	case s == "FILL-IN":
		return fmt.Errorf("host FILL-IN: lvsdoctor discover could not know how to reach this host; write netns:NAME, ssh://[user@]host[:port], user@host or an ~/.ssh/config alias")
	case s == "local":
		return nil
	case strings.HasPrefix(s, "netns:"):
		n := strings.TrimPrefix(s, "netns:")
		if n == "" || strings.ContainsAny(n, "/ \t") || n == "." || n == ".." {
			return fmt.Errorf("host %q: a netns name is a plain name as `ip netns list` shows it", s)
		}
		return nil
	case strings.HasPrefix(s, "ssh://"):
		rest := strings.TrimPrefix(s, "ssh://")
		if rest == "" || strings.ContainsAny(rest, "/ \t") {
			return fmt.Errorf("host %q: use ssh://[user@]host[:port]", s)
		}
		return nil
	case strings.Contains(s, ":"):
		return fmt.Errorf("host %q: unknown scheme; valid: %s", s, hostForms)
	case strings.ContainsAny(s, " \t/"):
		return fmt.Errorf("host %q: valid forms: %s", s, hostForms)
	}
	return nil // user@host or an ssh_config alias
}

func (v *validator) service(path string, s *Service) {
	switch s.Proto {
	case "":
		s.Proto = "tcp"
	case "tcp", "udp":
	case "fwmark":
		if s.Mark == 0 {
			v.at(path+".mark", "proto fwmark needs `mark: N` (N > 0)")
		}
	default:
		v.at(path+".proto", "proto %q: valid are tcp, udp, fwmark", s.Proto)
	}
	if s.Proto == "fwmark" {
		if a, err := netip.ParseAddr(s.VIP); s.VIP != "" && (err != nil || !a.Is4()) {
			if _, err := parseAddrPort(s.VIP, 0); err != nil {
				v.at(path+".vip", "vip %q: %v; write the VIP (an IPv4 address), e.g. 203.0.113.100", s.VIP, err)
			}
		}
		if len(s.Ports) > 0 && s.VIP == "" {
			v.at(path+".ports", "ports need the vip to test them against: give `vip: VIP`")
		}
		for k, p := range s.Ports {
			if _, _, err := parsePortSpec(p); err != nil {
				v.at(fmt.Sprintf("%s.ports[%d]", path, k), "port %q: %v; write 8080, tcp/8080 or udp/500", p, err)
			}
		}
	} else {
		if _, err := parseAddrPort(s.VIP, 0); err != nil {
			v.at(path+".vip", "vip %q: %v; write VIP:PORT, e.g. 203.0.113.100:80", s.VIP, err)
		}
		if len(s.Ports) > 0 {
			v.at(path+".ports", "ports: only for proto fwmark (a %s service is tested on its VIP:PORT)", s.Proto)
		}
	}
	switch s.Scheduler {
	case "":
		s.Scheduler = "rr"
	case "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos":
	default:
		v.at(path+".scheduler", "scheduler %q: valid are the IPVS schedulers rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos", s.Scheduler)
	}
	if len(s.RealServers) == 0 {
		v.at(path+".realservers", "service %s has no realservers", s.VIP)
	}
	vport := s.VIPPort().Port()
	if vport == 0 && len(s.Ports) > 0 {
		if _, p, err := parsePortSpec(s.Ports[0]); err == nil {
			vport = p
		}
	}
	for j := range s.RealServers {
		r := &s.RealServers[j]
		rp := fmt.Sprintf("%s.realservers[%d]", path, j)
		ap, err := parseAddrPort(r.Address, vport)
		if err != nil {
			v.at(rp+".address", "address %q: %v; write RIP:PORT, e.g. 198.18.0.2:80", r.Address, err)
			continue
		}
		r.Address = ap.String()
		if r.Host == "" {
			v.at(rp+".host", "missing host for real server %s: how to reach it (%s)", r.Address, hostForms)
		} else if err := ValidHost(r.Host); err != nil {
			v.at(rp+".host", "%v", err)
		}
		switch r.Forward {
		case "":
			r.Forward = "masq"
		case "masq", "route", "tunnel":
		default:
			v.at(rp+".forward", "forward %q: valid are masq (NAT, ipvsadm -m), route (DR, -g), tunnel (TUN, -i)", r.Forward)
		}
		if r.Weight != nil && (*r.Weight < 0 || *r.Weight > 65535) {
			v.at(rp+".weight", "weight %d: valid are 0..65535", *r.Weight)
		}
	}
}

// parseAddrPort accepts "IP:PORT", or a bare IP when def is non-zero.
func parseAddrPort(s string, def uint16) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPort{}, errors.New("missing")
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if !ap.Addr().Is4() {
			return ap, errors.New("only IPv4 is supported")
		}
		if ap.Port() == 0 {
			return ap, errors.New("port 0 is not a port")
		}
		return ap, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if def == 0 {
			return netip.AddrPort{}, errors.New("no port")
		}
		if !a.Is4() {
			return netip.AddrPort{}, errors.New("only IPv4 is supported")
		}
		return netip.AddrPortFrom(a, def), nil
	}
	host, port, ok := strings.Cut(s, ":")
	if ok {
		if _, err := netip.ParseAddr(host); err != nil {
			return netip.AddrPort{}, fmt.Errorf("%q is not an IPv4 address", host)
		}
		if _, err := strconv.Atoi(port); err != nil {
			return netip.AddrPort{}, fmt.Errorf("%q is not a port number", port)
		}
		return netip.AddrPort{}, errors.New("port out of range 1..65535")
	}
	return netip.AddrPort{}, fmt.Errorf("%q is not an IPv4 address", s)
}
