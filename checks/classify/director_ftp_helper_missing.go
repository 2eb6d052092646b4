package classify

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

func init() { addRule(ruleFTPHelperMissing) }

// FTP through a NAT director needs a helper that reads the control
// connection (ip_vs_ftp for IPVS, the conntrack FTP helper for nftables):
// it rewrites the real server's "227 Entering Passive Mode (RIP,port)"
// to the VIP and lets the data connection in. Without it the control
// connection works, the client receives the RIP in the 227 reply and its
// data connection fails (HOWTO's FTP notes). The client's FTP test says
// what it got; the captures say where the 227 left untranslated; the rules
// say whether any helper is attached.
func ruleFTPHelperMissing(v *view) []result.Finding {
	d := v.director
	if !d.Reached() || (!v.cip.IsValid() && !v.in.Static) {
		return nil
	}
	var out []result.Finding
	for _, sr := range v.in.Services {
		s := sr.Service
		vip := s.VIPPort().Addr()
		rips := map[netip.Addr]*Host{}
		for _, r := range s.RealServers {
			rips[r.AddrPort().Addr()] = v.in.Hosts[r.Label()]
		}
		var bad []obs.Conn
		var named netip.Addr
		for _, c := range sr.Conns {
			if c.Data == nil || c.Data.Result == "ok" {
				continue
			}
			ap, err := netip.ParseAddrPort(c.Data.Addr)
			if err != nil || ap.Addr() == vip {
				continue
			}
			if _, ok := rips[ap.Addr()]; !ok {
				continue // the server named another address: not the director's doing
			}
			bad = append(bad, c)
			if !named.IsValid() {
				named = ap.Addr()
			}
		}
		if len(sr.Conns) == 0 && s.Proto == "tcp" && s.VIPPort().Port() == ftpPort {
			if f, ok := v.ftpHelperFromModules(s); ok {
				out = append(out, f)
			}
			continue
		}
		if len(bad) == 0 {
			continue
		}
		ftpConns := 0
		for _, c := range sr.Conns {
			if c.Data != nil {
				ftpConns++
			}
		}
		c0 := bad[0]
		f := newFinding("director-ftp-helper-missing", d.Label)
		f.Service = s.String()
		f.Interface = v.publicIface()
		f.Summary = fmt.Sprintf("%s does not translate the FTP service's passive-mode replies: the client got %s's address %s in the 227 reply instead of the VIP %s, and its data connection failed",
			d.Label, labelOf(rips[named], named), named, vip)
		f.Evidence = append(f.Evidence,
			fmt.Sprintf("client: PASV → %q", c0.Response),
			fmt.Sprintf("client: data connection to %s (the address of the 227 reply): %s%s", c0.Data.Addr, c0.Data.Result, errSuffix(c0.Data.Error)),
			fmt.Sprintf("%d of %d FTP test connections: control connection up, 227 reply with a real server's address, data connection failed", len(bad), ftpConns))
		f.Evidence = append(f.Evidence, v.pasvOnWire(s.VIPPort().Port(), named)...)
		f.Evidence = append(f.Evidence, ftpHelperRules(d, s.VIPPort().Port())...)
		f.Remedy = ftpHelperRemedy(d, s.VIPPort())
		out = append(out, f)
	}
	return out
}

func labelOf(h *Host, a netip.Addr) string {
	if h != nil {
		return h.Label
	}
	return "the real server"
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return " (" + e + ")"
}

// pasvFor renders an address the way a 227 reply carries it (h1,h2,h3,h4).
func pasvFor(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("%d,%d,%d,%d", b[0], b[1], b[2], b[3])
}

// pasvOnWire follows the 227 reply naming addr: leaving the real server,
// leaving the director toward the client, arriving at the client.
func (v *view) pasvOnWire(port uint16, addr netip.Addr) []string {
	var ev []string
	want := pasvFor(addr)
	look := func(h *Host, dir string, test func(p obs.Packet) bool) string {
		if h == nil || h.Capture == nil {
			return ""
		}
		for _, p := range h.Capture.Packets {
			if p.Dir == dir && p.Proto == "tcp" && p.SrcPort == int(port) && strings.HasPrefix(p.Payload, "227 ") && strings.Contains(p.Payload, want) && test(p) {
				return fmt.Sprintf("%s %s %s: %s %q", h.Label, p.Iface, dir, fmtPacket(p), strings.TrimRight(p.Payload, "\r\n"))
			}
		}
		return ""
	}
	for _, h := range v.rs {
		if e := look(h, "out", func(p obs.Packet) bool { return p.Src == addr.String() }); e != "" {
			ev = append(ev, e+": the real server names its own address, as it should behind NAT")
			break
		}
	}
	if e := look(v.director, "out", func(p obs.Packet) bool { return p.Dst == v.cip.String() }); e != "" {
		ev = append(ev, e+": the reply leaves the director with the real server's address in it")
	}
	if e := look(v.client, "in", func(obs.Packet) bool { return true }); e != "" {
		ev = append(ev, e)
	}
	return ev
}

// ftpHelperRules lists what attaches an FTP helper on the director: nft
// rules with `ct helper set`, iptables CT --helper targets; or says there
// are none.
func ftpHelperRules(d *Host, port uint16) []string {
	f := d.Facts()
	if f == nil {
		return nil
	}
	var found []string
	for _, r := range f.NftRules {
		if r.Helper == "" {
			continue
		}
		if r.DPort != 0 && r.DPort != int(port) {
			found = append(found, fmt.Sprintf("nft %s %s %s handle %d attaches helper %q to port %d only, not %d: %s", r.Family, r.Table, r.Chain, r.Handle, r.Helper, r.DPort, port, r.Text))
			continue
		}
		found = append(found, fmt.Sprintf("nft %s %s %s handle %d: %s (attached, yet the reply was not rewritten: is nf_nat_ftp available?)", r.Family, r.Table, r.Chain, r.Handle, r.Text))
	}
	for _, ln := range iptablesRules(f.IptablesSave, "raw") {
		if strings.Contains(ln.rule, "--helper ftp") {
			found = append(found, "iptables -t raw "+ln.rule)
		}
	}
	if len(found) > 0 {
		return found
	}
	switch f.Datapath {
	case "ipvs":
		return []string{fmt.Sprintf("%s: IPVS service in NAT mode; the rewrite of 227 replies is ip_vs_ftp's (ports=%d), which is evidently not loaded", d.Label, port)}
	default:
		return []string{fmt.Sprintf("%s: no nftables rule sets a ct helper and iptables has no CT --helper ftp target: no FTP helper is attached to tcp port %d (the kernel assigns none by default since 4.7)", d.Label, port)}
	}
}

func ftpHelperRemedy(d *Host, vip netip.AddrPort) []string {
	f := d.Facts()
	if f != nil && f.Datapath == "ipvs" {
		r := []string{"modprobe ip_vs_ftp   # on " + d.Label + "; persist it in /etc/modules-load.d"}
		if vip.Port() != 21 {
			r[0] = "modprobe ip_vs_ftp ports=" + strconv.Itoa(int(vip.Port())) + "   # on " + d.Label
		}
		return r
	}
	return []string{
		"nft add table ip ftp",
		`nft 'add ct helper ip ftp ftp-standard { type "ftp" protocol tcp; }'`,
		"nft 'add chain ip ftp pre { type filter hook prerouting priority mangle; }'",
		fmt.Sprintf(`nft add rule ip ftp pre ip daddr %s tcp dport %d ct helper set "ftp-standard"   # on %s`, vip.Addr(), vip.Port(), d.Label),
		fmt.Sprintf("# iptables form: iptables -t raw -A PREROUTING -d %s -p tcp --dport %d -j CT --helper ftp", vip.Addr(), vip.Port()),
	}
}

// ftpPort is where an FTP service is recognised without test traffic.
const ftpPort = 21

// ftpHelperFromModules judges an FTP service that no test connection
// tried (--static) from the kernel's modules: under IPVS in NAT mode the
// 227 replies are rewritten by ip_vs_ftp alone, and a module that is not
// loaded rewrites nothing (loadable is not enough: IPVS does not load it).
func (v *view) ftpHelperFromModules(s topology.Service) (result.Finding, bool) {
	d := v.director
	f, t := v.ipvsTable()
	is := (*obs.IPVSService)(nil)
	if t != nil {
		is = ipvsService(t, s)
	}
	if is == nil || f.Modules == nil || f.Modules.Loaded == nil {
		return result.Finding{}, false
	}
	nat := false
	for _, dst := range is.Dests {
		nat = nat || dst.Forward == "masq"
	}
	if !nat || slices.Contains(f.Modules.Loaded, "ip_vs_ftp") || slices.Contains(f.Modules.Builtin, "ip_vs_ftp") {
		return result.Finding{}, false
	}
	fd := newFinding("director-ftp-helper-missing", d.Label)
	fd.Service = s.String()
	fd.Summary = fmt.Sprintf("%s balances the FTP service %s in NAT mode without ip_vs_ftp loaded: passive-mode replies will carry the real servers' addresses (read without test traffic)", d.Label, s)
	fd.Evidence = []string{ipvsadmLine(*is), fmt.Sprintf("/proc/modules on %s: %s; no ip_vs_ftp", d.Label, strings.Join(f.Modules.Loaded, ", "))}
	if has, _ := f.Modules.Has("ip_vs_ftp"); !has {
		fd.Evidence = append(fd.Evidence, "ip_vs_ftp is not in this kernel's modules.dep either: the kernel was built without it")
	}
	fd.Remedy = ftpHelperRemedy(d, s.VIPPort())
	return fd, true
}
