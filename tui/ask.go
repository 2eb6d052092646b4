package tui

import (
	"errors"
	"fmt"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
)

// question is one step of building a topology: what is asked, how an
// answer is checked as it is typed, and what it does to the draft.
type question struct {
	prompt      string
	help        string
	placeholder string
	def         string // taken when the answer is empty
	validate    func(d *draft, s string) error
	apply       func(d *draft, s string)
	// next decides what comes after (nil: the following question).
	next func(d *draft, s string) int
}

// draft is the topology being built by the questions.
type draft struct {
	director string
	vip      string
	proto    string
	rss      []topology.RealServer
	rsAddr   string
	client   string
	cip      string
	save     string
}

// question indexes.
const (
	qDirector = iota
	qVIP
	qProto
	qRSAddr
	qRSHost
	qMore
	qClient
	qCIP
	qSave
	qDone
)

func validHost(_ *draft, s string) error {
	if s == "" {
		return errors.New("missing: netns:NAME, ssh://[user@]host[:port], user@host, an ~/.ssh/config alias, or local")
	}
	return topology.ValidHost(s)
}

func questions(defSave string) []question {
	return []question{
		qDirector: {
			prompt:      "The director: how to reach it",
			help:        "netns:NAME, ssh://[user@]host[:port], user@host, an ~/.ssh/config alias, or local",
			placeholder: "ssh://root@director", validate: validHost,
			apply: func(d *draft, s string) { d.director = s },
		},
		qVIP: {
			prompt:      "The virtual service: VIP:PORT",
			help:        "the address and port clients connect to, e.g. 203.0.113.100:80",
			placeholder: "203.0.113.100:80",
			validate: func(_ *draft, s string) error {
				_, err := topology.ParseAddrPort(s, 0)
				return err
			},
			apply: func(d *draft, s string) { d.vip = s },
		},
		qProto: {
			prompt: "Its protocol: tcp or udp", def: "tcp", placeholder: "tcp",
			validate: func(_ *draft, s string) error {
				if s == "" || s == "tcp" || s == "udp" {
					return nil
				}
				return fmt.Errorf("%q: valid are tcp and udp", s)
			},
			apply: func(d *draft, s string) { d.proto = s },
		},
		qRSAddr: {
			prompt:      "Real server %d: its address RIP[:PORT]",
			help:        "the port defaults to the VIP's, e.g. 198.18.0.2:80",
			placeholder: "198.18.0.2:80",
			validate: func(d *draft, s string) error {
				ap, err := topology.ParseAddrPort(s, d.vport())
				if err != nil {
					return err
				}
				for _, r := range d.rss {
					if r.Address == ap.String() {
						return fmt.Errorf("%s is already real server %s", ap, r.Name)
					}
				}
				return nil
			},
			apply: func(d *draft, s string) {
				ap, _ := topology.ParseAddrPort(s, d.vport())
				d.rsAddr = ap.String()
			},
		},
		qRSHost: {
			prompt:      "Real server %d: how to reach it",
			help:        "netns:NAME, ssh://[user@]host[:port], user@host, an ~/.ssh/config alias, or local",
			placeholder: "ssh://root@rs1", validate: validHost,
			apply: func(d *draft, s string) {
				d.rss = append(d.rss, topology.RealServer{Address: d.rsAddr, Name: fmt.Sprintf("rs%d", len(d.rss)+1), Host: s})
			},
		},
		qMore: {
			prompt: "Another real server? y/n", def: "n", placeholder: "n",
			validate: func(_ *draft, s string) error {
				switch strings.ToLower(s) {
				case "", "y", "yes", "n", "no":
					return nil
				}
				return errors.New("answer y or n")
			},
			next: func(_ *draft, s string) int {
				if strings.HasPrefix(strings.ToLower(s), "y") {
					return qRSAddr
				}
				return qClient
			},
		},
		qClient: {
			prompt:      "The client: how to reach it",
			help:        "a machine outside the cluster that opens test connections to the VIP",
			placeholder: "ssh://root@client", validate: validHost,
			apply: func(d *draft, s string) { d.client = s },
		},
		qCIP: {
			prompt: "The client's address (CIP)",
			help:   "empty: ask the client which source it uses toward the VIP",
			validate: func(_ *draft, s string) error {
				if s == "" {
					return nil
				}
				_, err := topology.ParseAddr(s)
				return err
			},
			apply: func(d *draft, s string) { d.cip = s },
		},
		qSave: {
			prompt: "Save the topology to", def: defSave, placeholder: defSave,
			validate: func(_ *draft, s string) error {
				if strings.ContainsAny(s, "\x00\n") {
					return errors.New("not a file name")
				}
				return nil
			},
			apply: func(d *draft, s string) { d.save = s },
		},
	}
}

// vport is the VIP's port, the default for real servers.
func (d *draft) vport() uint16 {
	ap, _ := topology.ParseAddrPort(d.vip, 0)
	return ap.Port()
}

// topology is the draft in DESIGN.md's shape.
func (d *draft) topology() *topology.Topology {
	proto := d.proto
	if proto == "" {
		proto = "tcp"
	}
	return &topology.Topology{
		Client:   topology.Host{Name: "client", Host: d.client, Address: d.cip},
		Director: topology.Host{Name: "director", Host: d.director},
		Services: []topology.Service{{VIP: d.vip, Proto: proto, Scheduler: "rr", RealServers: d.rss}},
	}
}
