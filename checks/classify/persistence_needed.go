package classify

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
)

func init() { addRule(rulePersistenceNeeded) }

// multiConnPorts are services whose clients open several connections that
// must reach the same real server: FTP's control connection (21) and its
// data connections. Under NAT ip_vs_ftp ties them together; under direct
// routing or tunnelling the director never sees the PORT/PASV replies, so
// only persistence keeps the data connection on the same real server.
var multiConnPorts = map[uint16]string{21: "FTP"}

// rulePersistenceNeeded (warning, static from the IPVS table): an IPVS
// service for FTP whose real servers are reached by direct routing or
// tunnelling, without persistence (ipvsadm -p).
func rulePersistenceNeeded(v *view) []result.Finding {
	d := v.director
	if !d.Reached() {
		return nil
	}
	f := d.Facts()
	if f == nil || f.IPVS == nil {
		return nil
	}
	var out []result.Finding
	for _, s := range f.IPVS.Services {
		if s.Persistent || s.Proto != "tcp" {
			continue
		}
		ap, err := netip.ParseAddrPort(s.Addr)
		if err != nil {
			continue
		}
		app, ok := multiConnPorts[ap.Port()]
		if !ok {
			continue
		}
		var direct []string
		for _, dst := range s.Dests {
			if dst.Forward == "route" || dst.Forward == "tunnel" {
				direct = append(direct, fmt.Sprintf("%s (%s)", dst.Addr, dst.Forward))
			}
		}
		if len(direct) == 0 {
			continue
		}
		fd := newFinding("persistence-needed", d.Label)
		fd.Service = "tcp " + s.Addr
		fd.Summary = fmt.Sprintf("%s service tcp %s sends to real servers by direct routing or tunnelling without persistence: a client's data connections may land on another real server than its control connection", app, s.Addr)
		fd.Evidence = append(fd.Evidence, fmt.Sprintf("ipvsadm -Ln: TCP %s %s (not persistent) -> %s", s.Addr, s.Scheduler, strings.Join(direct, ", ")))
		fd.Remedy = append(fd.Remedy, fmt.Sprintf("ipvsadm -E -t %s -s %s -p 360   # persistence: every connection of a client to the same real server", s.Addr, orDefault(s.Scheduler, "rr")))
		out = append(out, fd)
	}
	return out
}
