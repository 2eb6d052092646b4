package classify

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// ipvsTable is the director's IPVS table when IPVS is what balances: the
// table is then the authority on what the director runs. An nftables
// datapath's maps say less (ratios, not weights; no lc/wlc), so the
// static comparisons leave it alone.
func (v *view) ipvsTable() (*obs.Facts, *obs.IPVSTable) {
	d := v.director
	if !d.Reached() {
		return nil, nil
	}
	f := d.Facts()
	if f.IPVS == nil || (f.Datapath != "ipvs" && len(f.IPVS.Services) == 0) {
		return f, nil
	}
	return f, f.IPVS
}

// ipvsService finds s in the table.
func ipvsService(t *obs.IPVSTable, s topology.Service) *obs.IPVSService {
	for i, is := range t.Services {
		if is.Proto != s.Proto {
			continue
		}
		if s.Proto == "fwmark" && is.Mark == s.Mark {
			return &t.Services[i]
		}
		if s.Proto != "fwmark" && is.Addr == s.VIPPort().String() {
			return &t.Services[i]
		}
	}
	return nil
}

// ipvsadmService is the service's -t/-u/-f argument of ipvsadm.
func ipvsadmService(proto, addr string, mark uint32) string {
	switch proto {
	case "fwmark":
		return fmt.Sprintf("-f %d", mark)
	case "udp":
		return "-u " + addr
	case "sctp":
		return "--sctp-service " + addr
	}
	return "-t " + addr
}

// ipvsadmForward is ipvsadm's flag for a forwarding method.
func ipvsadmForward(f string) string {
	switch f {
	case "route":
		return "-g"
	case "tunnel":
		return "-i"
	}
	return "-m"
}

// ipvsadmLine renders a service as `ipvsadm -Ln` shows it, for evidence.
func ipvsadmLine(is obs.IPVSService) string {
	var b strings.Builder
	name := strings.ToUpper(is.Proto) + " " + is.Addr
	if is.Proto == "fwmark" {
		name = fmt.Sprintf("FWM %d", is.Mark)
	}
	fmt.Fprintf(&b, "ipvsadm -Ln: %s %s", name, is.Scheduler)
	if is.Persistent {
		b.WriteString(" persistent")
	}
	for _, d := range is.Dests {
		fmt.Fprintf(&b, " -> %s %s w=%d", d.Addr, forwardWords(d.Forward), d.Weight)
	}
	return b.String()
}

func forwardWords(f string) string {
	switch f {
	case "masq":
		return "Masq"
	case "route":
		return "Route"
	case "tunnel":
		return "Tunnel"
	}
	return f
}

// configName says where the configured services came from, for evidence.
func (v *view) configName() string {
	if src := v.in.Topology.Source; src != nil && src.Kind == "keepalived" {
		return src.File
	}
	return "the topology"
}

// sameAddrPort compares "IP:PORT" strings as addresses, so that an
// IPv4-mapped form or another spelling still matches.
func sameAddrPort(a, b string) bool {
	if a == b {
		return true
	}
	x, err1 := netip.ParseAddrPort(a)
	y, err2 := netip.ParseAddrPort(b)
	return err1 == nil && err2 == nil && x.Addr().Unmap() == y.Addr().Unmap() && x.Port() == y.Port()
}
