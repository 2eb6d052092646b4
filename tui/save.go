package tui

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
)

var plainYAML = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:/@%+-]*$`)

func yq(s string) string {
	if plainYAML.MatchString(s) && !strings.Contains(s, ": ") {
		return s
	}
	return strconv.Quote(s)
}

// YAML writes a topology in DESIGN.md's format ("Topology file").
func YAML(t *topology.Topology) []byte {
	var b strings.Builder
	b.WriteString("# written by lvsdoctor wizard; format: DESIGN.md, \"Topology file\"\n")
	host := func(key string, h topology.Host) {
		fmt.Fprintf(&b, "%s:\n", key)
		if h.Name != "" {
			fmt.Fprintf(&b, "  name: %s\n", yq(h.Name))
		}
		fmt.Fprintf(&b, "  host: %s\n", yq(h.Host))
		if h.Address != "" {
			fmt.Fprintf(&b, "  address: %s\n", yq(h.Address))
		}
	}
	host("client", t.Client)
	host("director", t.Director)
	b.WriteString("services:\n")
	for _, s := range t.Services {
		fmt.Fprintf(&b, "  - vip: %s\n", yq(s.VIP))
		fmt.Fprintf(&b, "    proto: %s\n", yq(s.Proto))
		if s.Scheduler != "" {
			fmt.Fprintf(&b, "    scheduler: %s\n", yq(s.Scheduler))
		}
		b.WriteString("    realservers:\n")
		for _, r := range s.RealServers {
			fmt.Fprintf(&b, "      - address: %s\n", yq(r.Address))
			if r.Name != "" {
				fmt.Fprintf(&b, "        name: %s\n", yq(r.Name))
			}
			fmt.Fprintf(&b, "        host: %s\n", yq(r.Host))
		}
	}
	return []byte(b.String())
}

// Save writes t to path and reads it back with topology.Load, so what the
// wizard checks is exactly what the file says.
func Save(path string, t *topology.Topology) (*topology.Topology, error) {
	if err := os.WriteFile(path, YAML(t), 0o644); err != nil {
		return nil, err
	}
	return topology.Load(path)
}
