package lab

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Capability bits (linux/capability.h).
const (
	capNetAdmin = 12
	capNetRaw   = 13
	capSysAdmin = 21
)

// CheckPrivileges fails at once, naming what is missing, unless the process
// has CAP_SYS_ADMIN (create and enter namespaces), CAP_NET_ADMIN (links,
// routes, nftables) and CAP_NET_RAW (raw sockets) in its effective set.
func CheckPrivileges() error {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return fmt.Errorf("cannot read capabilities: %w", err)
	}
	defer f.Close()
	var eff uint64
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			eff, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return fmt.Errorf("cannot parse CapEff %q: %w", v, err)
			}
			found = true
		}
	}
	if !found {
		return fmt.Errorf("cannot read capabilities: no CapEff in /proc/self/status")
	}
	var missing []string
	for _, c := range []struct {
		bit  uint
		name string
	}{{capSysAdmin, "CAP_SYS_ADMIN"}, {capNetAdmin, "CAP_NET_ADMIN"}, {capNetRaw, "CAP_NET_RAW"}} {
		if eff&(1<<c.bit) == 0 {
			missing = append(missing, c.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the lab needs CAP_SYS_ADMIN (namespaces), CAP_NET_ADMIN (links, routes, nftables) and CAP_NET_RAW (raw sockets); missing %s: run it as root (sudo lvsdoctor lab ...)", strings.Join(missing, ", "))
	}
	return nil
}
