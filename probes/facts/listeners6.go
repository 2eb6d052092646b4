package facts

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// wildcard6Listeners lists the IPv6 sockets bound to the wildcard address
// [::] (TCP listening, UDP unconnected): with the default
// net.ipv6.bindv6only=0 they receive IPv4 too, and a server that binds
// ":PORT" (Go, many daemons) has only those. Their Addr is "[::]:PORT".
// Errors are ignored: IPv6 may be missing altogether.
func wildcard6Listeners() []obs.Listener {
	var out []obs.Listener
	if socks, err := tcpListeners(unix.AF_INET6); err == nil {
		for _, s := range socks {
			if s.addr.Addr().IsUnspecified() {
				out = append(out, obs.Listener{Proto: "tcp", Addr: net.JoinHostPort("::", strconv.Itoa(int(s.addr.Port()))), Inode: uint64(s.inode)})
			}
		}
	}
	f, err := os.Open(filepath.Join(procNet, "udp6"))
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 || fs[3] != "07" {
			continue
		}
		h, p, ok := strings.Cut(fs[1], ":")
		if !ok || h != strings.Repeat("0", 32) {
			continue
		}
		port, err := strconv.ParseUint(p, 16, 16)
		if err != nil {
			continue
		}
		ino, _ := strconv.ParseUint(fs[9], 10, 64)
		out = append(out, obs.Listener{Proto: "udp", Addr: net.JoinHostPort("::", strconv.Itoa(int(port))), Inode: ino})
	}
	return out
}
