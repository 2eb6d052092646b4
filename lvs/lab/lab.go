// Package lab builds the reference LVS-NAT cluster of DESIGN.md ("The lab")
// in network namespaces, with netlink and nftables from Go, and injects the
// faults of FAULTS.md into it.
//
// A lab named NAME (it must start with "lvsd") is a set of namespaces
// NAME-client, NAME-director, NAME-rs1..NAME-rsK, NAME-router and NAME-sw.
// NAME-sw holds two bridges, pub and priv; every host interface is a veth
// whose peer is a port of one of them. Nothing is added to the root
// namespace. The lab's state lives in StateRoot/NAME/state.json.
package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// StateRoot holds one directory per lab.
var StateRoot = "/run/lvsdoctor/labs"

// NetnsDir is where named namespaces are bind-mounted (ip netns).
const NetnsDir = "/run/netns"

// DefaultName is the lab name when none is given; every lab name starts
// with NamePrefix so that DownAll can find leftovers.
const (
	DefaultName    = "lvsd"
	NamePrefix     = "lvsd"
	MaxRealServers = 200
)

// Addressing of the lab (reserved test ranges, FAULTS.md "Lab defaults").
var (
	PubNet     = mustCIDR("203.0.113.0/24")
	PrivNet    = mustCIDR("198.18.0.0/24")
	ClientIP   = net.IPv4(203, 0, 113, 10).To4()
	DirPubIP   = net.IPv4(203, 0, 113, 1).To4()
	VIP        = net.IPv4(203, 0, 113, 100).To4()
	DIP        = net.IPv4(198, 18, 0, 1).To4()
	RouterPriv = net.IPv4(198, 18, 0, 254).To4()
	RouterPub  = net.IPv4(203, 0, 113, 254).To4()
)

// RIP is the address of real server n (1-based): 198.18.0.(1+n).
func RIP(n int) net.IP { return net.IPv4(198, 18, 0, byte(1+n)).To4() }

func mustCIDR(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

// Topologies of the lab (Options.Topology).
const (
	// TopologyNAT is the seed's diagram: the client on the public LAN,
	// the real servers on the private one, the director between them.
	TopologyNAT = "nat"
	// TopologyFlat is one-arm LVS-NAT, the HOWTO's "client and server on
	// the same physical media": client, director, real servers and router
	// on one bridge. The director has one interface holding its public
	// address, the VIP and the DIP; the client and the real servers stay
	// in different subnets, so traffic still goes through the director.
	TopologyFlat = "flat"
	// TopologyClientOnDirector is the NAT lab whose topology file names
	// the director itself as the client (the HOWTO: not a valid test).
	TopologyClientOnDirector = "client-on-director"
)

// Datapaths of the director (Options.Datapath).
const (
	// DatapathNft is nftables conntrack NAT (DNAT with numgen, masquerade).
	DatapathNft = "nft"
	// DatapathNftStateless is nftables without conntrack for the
	// services: notrack, a jhash of the client's address and port picks
	// the real server, the request's destination and the reply's source
	// are rewritten in place. Like IPVS (and unlike conntrack NAT) it
	// lets ICMP redirects through; it cannot help FTP.
	DatapathNftStateless = "nft-stateless"
)

// Options describe a lab to build.
type Options struct {
	Name        string `json:"name"`
	RealServers int    `json:"realservers"`
	// Datapath: "auto" or "nft" (nftables conntrack NAT), "nft-stateless"
	// (see DatapathNftStateless), "ipvs" (kernel IPVS, see ipvs.go; "auto"
	// picks it where the kernel has IPVS).
	Datapath string `json:"datapath"`
	// Topology: "nat" (default), "flat" or "client-on-director".
	Topology string `json:"topology,omitempty"`
	// Weights, when set, gives one weight per real server and makes the
	// schedulers wrr; otherwise every weight is 1 and the scheduler rr.
	Weights []int `json:"weights,omitempty"`
	// Progress, when set, receives one line per build phase.
	Progress func(string) `json:"-"`
	// SSH also builds the management network (NAME-mgmt, a bastion) and
	// starts an sshd in every host (ssh.go); SSHUser is a non-root login
	// that gets the lab's key and a NOPASSWD sudoers drop-in.
	SSH     bool   `json:"ssh,omitempty"`
	SSHUser string `json:"ssh_user,omitempty"`
}

// Roles.
const (
	RoleClient   = "client"
	RoleDirector = "director"
	RoleRouter   = "router"
	RoleSwitch   = "sw"
)

// Iface is one interface of a host: a veth whose peer (Peer, in the switch
// namespace) is a port of Bridge.
type Iface struct {
	Name   string   `json:"name"`
	Peer   string   `json:"peer"`
	Bridge string   `json:"bridge"`
	Addrs  []string `json:"addrs"` // CIDR
	MAC    string   `json:"mac,omitempty"`
}

// Host is one namespace of the lab.
type Host struct {
	Role      string  `json:"role"` // client, director, router, sw, rs1...
	Namespace string  `json:"namespace"`
	Ifaces    []Iface `json:"ifaces,omitempty"`
	Gateway   string  `json:"gateway,omitempty"` // default route
	Forward   bool    `json:"forward"`
	// Conf overrides the lab's default net.ipv4.conf.{all,default,IFACE}
	// values by key (send_redirects, arp_ignore...).
	Conf map[string]string `json:"conf,omitempty"`
}

// RealServer of a service.
type RealServer struct {
	Name    string `json:"name"` // rs1
	Address string `json:"address"`
	Port    int    `json:"port"`
	Weight  int    `json:"weight"`
}

// Service is one virtual service.
type Service struct {
	Proto string `json:"proto"` // tcp, udp, fwmark
	VIP   string `json:"vip"`
	// Port is VPORT; for a firewall-mark service, the port the marking
	// rule matches (with MarkProto).
	Port int `json:"port"`
	// Mark and MarkProto describe a firewall-mark service: packets to
	// VIP, MarkProto port Port get mark Mark, and the service balances by
	// mark.
	Mark        uint32       `json:"mark,omitempty"`
	MarkProto   string       `json:"mark_proto,omitempty"`
	Scheduler   string       `json:"scheduler"`
	Kind        string       `json:"kind"` // http, udp-echo, ftp, http-alt: what the real servers run
	RealServers []RealServer `json:"realservers"`
}

// String is "tcp 203.0.113.100:80", or "fwmark 1" for a firewall-mark
// service (as the topology file names services).
func (s Service) String() string {
	if s.Proto == "fwmark" {
		return fmt.Sprintf("fwmark %d", s.Mark)
	}
	return s.Proto + " " + net.JoinHostPort(s.VIP, strconv.Itoa(s.Port))
}

// L4 is the transport protocol of the service's traffic: Proto, or
// MarkProto for a firewall-mark service.
func (s Service) L4() string {
	if s.Proto == "fwmark" {
		return s.MarkProto
	}
	return s.Proto
}

// Proc is a service process started on a real server.
type Proc struct {
	Host string `json:"host"` // rs1
	Kind string `json:"kind"` // http, udp-echo
	Addr string `json:"addr"` // RIP:RPORT
	PID  int    `json:"pid"`  // 0 when stopped (by a fault)
}

// FaultRecord is one injected fault.
type FaultRecord struct {
	ID      string    `json:"id"`
	Host    string    `json:"host"`
	Variant string    `json:"variant,omitempty"`
	Time    time.Time `json:"time"`
}

// State is what state.json holds.
type State struct {
	Name     string        `json:"name"`
	Options  Options       `json:"options"`
	Created  time.Time     `json:"created"`
	Hosts    []Host        `json:"hosts"`
	Services []Service     `json:"services"`
	Procs    []Proc        `json:"procs"`
	Faults   []FaultRecord `json:"faults"`
	// Netns inodes of the lab's namespaces, to find processes left inside.
	Inodes map[string]uint64 `json:"inodes,omitempty"`
	// SSH is the management network of `lab up --ssh` (nil without).
	SSH *SSHState `json:"ssh,omitempty"`
}

// Host returns the host with the given role, or nil.
func (s *State) Host(role string) *Host {
	for i := range s.Hosts {
		if s.Hosts[i].Role == role {
			return &s.Hosts[i]
		}
	}
	return nil
}

// RealServerRoles lists rs1..rsK.
func (s *State) RealServerRoles() []string {
	var r []string
	for _, h := range s.Hosts {
		if isRSRole(h.Role) {
			r = append(r, h.Role)
		}
	}
	return r
}

// ResolveHost maps a role (rs1, client) or a full namespace name to the
// host; the error lists the valid names.
func (s *State) ResolveHost(name string) (*Host, error) {
	for i := range s.Hosts {
		if s.Hosts[i].Role == name || s.Hosts[i].Namespace == name {
			return &s.Hosts[i], nil
		}
	}
	var valid []string
	for _, h := range s.Hosts {
		valid = append(valid, h.Role)
	}
	return nil, fmt.Errorf("lab %s has no host %q (valid: %v, or a full namespace name like %s)", s.Name, name, valid, s.Hosts[0].Namespace)
}

var (
	nameRE = regexp.MustCompile(`^lvsd[a-z0-9]*(-[a-z0-9]+)*$`)
	rsRE   = regexp.MustCompile(`^rs[0-9]+$`)
	roleRE = regexp.MustCompile(`^(client|director|router|sw|rs[0-9]+|mgmt|bastion)$`)
)

func isRSRole(r string) bool { return rsRE.MatchString(r) }

// ValidateName checks a lab name: it starts with "lvsd", is lower-case
// letters, digits and dashes, and at most 20 characters (namespace names are
// NAME-ROLE).
func ValidateName(name string) error {
	if !nameRE.MatchString(name) || len(name) > 20 {
		return fmt.Errorf("invalid lab name %q: it must start with %q, use only a-z, 0-9 and '-', and be at most 20 characters (e.g. lvsd, lvsd2, lvsd-test)", name, NamePrefix)
	}
	return nil
}

// StateDir is the directory of lab name.
func StateDir(name string) string { return filepath.Join(StateRoot, name) }

func statePath(name string) string { return filepath.Join(StateDir(name), "state.json") }

// ErrNoLab is returned by Load when the lab does not exist.
var ErrNoLab = errors.New("no such lab")

// Load reads the state of lab name.
func Load(name string) (*State, error) {
	b, err := os.ReadFile(statePath(name))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("lab %s: %w (run 'lvsdoctor lab up --name %s' first)", name, ErrNoLab, name)
		}
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("lab %s: %s: %w", name, statePath(name), err)
	}
	return &s, nil
}

// save writes state.json atomically.
func (s *State) save() error {
	dir := StateDir(s.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := statePath(s.Name) + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, statePath(s.Name))
}
