// Package caps tells which Linux capabilities this process lacks, so a
// command can say up front what privilege it needs instead of failing deep
// inside a probe.
package caps

import (
	"os"
	"strconv"
	"strings"
)

// Names of the capabilities lvsdoctor needs, with their bits
// (linux/capability.h).
const (
	NetAdmin = "CAP_NET_ADMIN" // links, routes, nftables, conntrack
	NetRaw   = "CAP_NET_RAW"   // raw sockets: ping, traceroute, capture
	SysAdmin = "CAP_SYS_ADMIN" // create and enter network namespaces
)

var bits = map[string]uint{NetAdmin: 12, NetRaw: 13, SysAdmin: 21}

// Missing returns those of names that are not in the effective set (all
// of them when the set cannot be read).
func Missing(names ...string) []string {
	eff, ok := effective()
	var miss []string
	for _, n := range names {
		if !ok || eff&(1<<bits[n]) == 0 {
			miss = append(miss, n)
		}
	}
	return miss
}

func effective() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, ln := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(ln, "CapEff:"); ok {
			eff, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return eff, err == nil
		}
	}
	return 0, false
}
