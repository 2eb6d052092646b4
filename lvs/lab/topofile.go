package lab

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
)

// WriteTopology writes the lab's topology file (DESIGN.md, "Topology
// file") to w.
func (s *State) WriteTopology(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# lvsdoctor lab %s (written by 'lvsdoctor lab up'; topology %s, datapath %s)\n", s.Name, s.Options.Topology, s.Options.Datapath)
	cns, cip := s.TopologyClient()
	d := s.Host(RoleDirector)
	fmt.Fprintf(&b, "client:\n  name: client\n  host: netns:%s\n  address: %s\n", cns, cip)
	fmt.Fprintf(&b, "director:\n  name: director\n  host: netns:%s\n", d.Namespace)
	b.WriteString("services:\n")
	for _, svc := range s.Services {
		if svc.Proto == "fwmark" {
			port := strconv.Itoa(svc.Port)
			if svc.MarkProto != "tcp" {
				port = svc.MarkProto + "/" + port
			}
			fmt.Fprintf(&b, "  - vip: %s\n    proto: fwmark\n    mark: %d\n    ports: [%s]\n    scheduler: %s\n    persistent: false\n    realservers:\n",
				svc.VIP, svc.Mark, port, svc.Scheduler)
		} else {
			fmt.Fprintf(&b, "  - vip: %s\n    proto: %s\n    scheduler: %s\n    persistent: false\n    realservers:\n",
				net.JoinHostPort(svc.VIP, strconv.Itoa(svc.Port)), svc.Proto, svc.Scheduler)
		}
		for _, rs := range svc.RealServers {
			h := s.Host(rs.Name)
			fmt.Fprintf(&b, "      - address: %s\n        name: %s\n        host: netns:%s\n        forward: masq\n        weight: %d\n",
				net.JoinHostPort(rs.Address, strconv.Itoa(rs.Port)), rs.Name, h.Namespace, rs.Weight)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteTopologyFile writes the topology file to path.
func (s *State) WriteTopologyFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := s.WriteTopology(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
