// Package facts takes the static picture of the host it runs on (links,
// addresses, routes, neighbours, sysctls, counters, nftables, iptables,
// conntrack, listeners, IPVS) in the process's own network namespace.
//
// Everything runs on the calling goroutine (netlink sockets, /proc/sys and
// /proc/thread-self/net are those of the caller's thread), and every part
// that fails leaves its field nil and says why in Errors.
package facts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/lvsdoctor/lvsdoctor/lvs/ipvs"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
	"github.com/lvsdoctor/lvsdoctor/probes/routeget"
)

// Where the kernel's files are; tests may point them elsewhere.
var (
	procNet = "/proc/thread-self/net"
	procSys = "/proc/sys"
)

// CommandTimeout bounds each external command (iptables-save).
const CommandTimeout = 2 * time.Second

// ConfKeys are the per-interface IPv4 sysctls read for all, default and
// every interface.
var ConfKeys = []string{"rp_filter", "send_redirects", "accept_redirects", "forwarding", "arp_ignore", "arp_announce"}

// Collect reads every part of obs.Facts.
func Collect(ctx context.Context) obs.Facts { return CollectWith(ctx, obs.FactsArgs{}) }

// CollectWith reads the parts of obs.Facts that a does not skip; skipped
// parts stay nil.
func CollectWith(ctx context.Context, a obs.FactsArgs) obs.Facts { return CollectOn(ctx, nil, a) }

// CollectOn is CollectWith with the route-netlink requests (links,
// addresses, routes, neighbours) on nl, a handle of this namespace that an
// agent keeps for the host; nil opens one for this call. The package's
// own functions open a socket per request, and an agent's sockets come
// and go through Go's poller each time.
func CollectOn(ctx context.Context, nl *netlink.Handle, a obs.FactsArgs) obs.Facts {
	if nl == nil {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			h = &netlink.Handle{} // a socket per request, as the package does
		} else {
			defer h.Close()
		}
		nl = h
	}
	f := obs.Facts{TakenAt: time.Now().UTC()}
	fail := func(part string, err error) {
		f.Errors = append(f.Errors, part+": "+err.Error())
	}
	if h, err := os.Hostname(); err == nil {
		f.Hostname = h
	}
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		f.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	if a.Director {
		m, err := readModules(f.Kernel)
		if err != nil {
			fail("modules", err)
		}
		f.Modules = m
	}
	names := map[int]string{}
	if links, err := nl.LinkList(); err != nil {
		fail("links", err)
	} else {
		for _, l := range links {
			names[l.Attrs().Index] = l.Attrs().Name
		}
		f.Links = linksOf(links, names)
	}
	if !a.SkipStatic {
		readStatic(&f, nl, names, fail)
	}
	if neigh, err := nl.NeighList(0, netlink.FAMILY_V4); err != nil {
		fail("neigh", err)
	} else {
		f.Neigh = []obs.Neigh{}
		for _, n := range neigh {
			on := obs.Neigh{IP: n.IP.String(), Link: names[n.LinkIndex], State: NeighState(n.State)}
			if len(n.HardwareAddr) > 0 {
				on.MAC = n.HardwareAddr.String()
			}
			f.Neigh = append(f.Neigh, on)
		}
	}
	if a.RawCounters {
		if raw, err := readCountersRaw(); err != nil {
			fail("counters", err)
		} else {
			f.CountersRaw = raw
		}
	} else if c, err := readCounters(); err != nil {
		fail("counters", err)
	} else {
		f.Counters = c
	}
	if ctx.Err() == nil {
		// One netlink socket for the whole read, not one per request (a
		// listing, then every chain's rules and every map's elements).
		if nc, err := nftables.New(nftables.AsLasting()); err != nil {
			fail("nftables", err)
		} else {
			chains, rules, err := readNft(nc)
			if err != nil {
				fail("nftables", err)
			}
			f.NftChains, f.NftRules = chains, rules
			_ = nc.CloseLasting()
		}
	}
	nftIpt, legacyIpt := iptablesInUse(f.NftRules)
	f.IptablesSave = iptablesSave(ctx, nftIpt, legacyIpt, fail)
	if ctx.Err() == nil && !a.SkipConntrack {
		if ct, err := readConntrack(a.ConntrackOf); err != nil {
			fail("conntrack", err)
		} else {
			f.Conntrack = ct
		}
	}
	if !a.SkipListeners {
		if l, err := readListeners(); err != nil {
			fail("listeners", err)
		} else {
			f.Listeners = l
		}
	}
	if t, err := readIPVS(); err != nil {
		fail("ipvs", err)
	} else {
		f.IPVS = t
		if t != nil && a.Director && !a.SkipStatic {
			if f.IPVS.Timeouts, err = ipvs.ReadTimeouts(); err != nil {
				fail("ipvs", err)
			}
		}
	}
	f.Datapath = Datapath(f)
	if err := ctx.Err(); err != nil {
		fail("collect", err)
	}
	return f
}

// readStatic reads what does not change during a test: addresses, routes
// and sysctls.
func readStatic(f *obs.Facts, nl *netlink.Handle, names map[int]string, fail func(string, error)) {
	if addrs, err := nl.AddrList(nil, netlink.FAMILY_V4); err != nil {
		fail("addrs", err)
	} else {
		f.Addrs = []obs.Addr{}
		for _, a := range addrs {
			f.Addrs = append(f.Addrs, obs.Addr{Link: names[a.LinkIndex], Prefix: a.IPNet.String()})
		}
	}
	if routes, err := nl.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE); err != nil {
		fail("routes", err)
	} else {
		f.Routes = routesOf(routes, names)
	}
	if s, err := readSysctls(); err != nil {
		fail("sysctls", err)
		if len(s) > 0 {
			f.Sysctls = s
		}
	} else {
		f.Sysctls = s
	}
}

// Datapath is "ipvs" when IPVS has services, else "nft" when a rule
// does conntrack DNAT, else "nft-stateless" when a rule rewrites the
// destination in place (obs.NftRule.Stateless), else "".
func Datapath(f obs.Facts) string {
	if f.IPVS != nil && len(f.IPVS.Services) > 0 {
		return "ipvs"
	}
	dp := ""
	for _, r := range f.NftRules {
		if r.NAT == "dnat" {
			if !r.Stateless {
				return "nft"
			}
			dp = "nft-stateless"
		}
	}
	return dp
}

func linksOf(links []netlink.Link, names map[int]string) []obs.Link {
	out := []obs.Link{}
	for _, l := range links {
		a := l.Attrs()
		ol := obs.Link{
			Index:     a.Index,
			Name:      a.Name,
			Kind:      l.Type(),
			Up:        a.Flags&net.FlagUp != 0,
			Carrier:   a.RawFlags&unix.IFF_LOWER_UP != 0,
			OperState: a.OperState.String(),
			MTU:       a.MTU,
			Master:    names[a.MasterIndex],
		}
		if a.EncapType == "loopback" {
			ol.Kind = "loopback"
		}
		if len(a.HardwareAddr) > 0 {
			ol.MAC = a.HardwareAddr.String()
		}
		if s := a.Statistics; s != nil {
			ol.RxPackets, ol.TxPackets = s.RxPackets, s.TxPackets
			ol.RxErrors, ol.TxErrors = s.RxErrors, s.TxErrors
			ol.RxDropped, ol.TxDropped = s.RxDropped, s.TxDropped
		}
		out = append(out, ol)
	}
	return out
}

func routesOf(routes []netlink.Route, names map[int]string) []obs.Route {
	out := []obs.Route{}
	for _, r := range routes {
		or := obs.Route{
			Table:    r.Table,
			Type:     routeget.TypeName(r.Type),
			Dst:      "default",
			Dev:      names[r.LinkIndex],
			Protocol: r.Protocol.String(),
			Scope:    r.Scope.String(),
			Metric:   r.Priority,
			Flags:    routeget.Flags(r.Flags),
		}
		if r.Dst != nil {
			or.Dst = r.Dst.String()
		}
		if r.Gw != nil {
			or.Gateway = r.Gw.String()
		} else if len(r.MultiPath) > 0 && r.MultiPath[0].Gw != nil {
			or.Gateway = r.MultiPath[0].Gw.String()
			or.Dev = names[r.MultiPath[0].LinkIndex]
		}
		if r.Src != nil {
			or.Src = r.Src.String()
		}
		out = append(out, or)
	}
	return out
}

// NeighState names NUD_* states the way ip-neigh does.
func NeighState(s int) string {
	if s == 0 {
		return "NONE"
	}
	var out []string
	for _, b := range []struct {
		bit  int
		name string
	}{
		{unix.NUD_INCOMPLETE, "INCOMPLETE"}, {unix.NUD_REACHABLE, "REACHABLE"}, {unix.NUD_STALE, "STALE"},
		{unix.NUD_DELAY, "DELAY"}, {unix.NUD_PROBE, "PROBE"}, {unix.NUD_FAILED, "FAILED"},
		{unix.NUD_NOARP, "NOARP"}, {unix.NUD_PERMANENT, "PERMANENT"},
	} {
		if s&b.bit != 0 {
			out = append(out, b.name)
		}
	}
	return strings.Join(out, ",")
}

// readSysctls reads the sysctls of this namespace the checks look at.
// Each is opened relative to an open net/ipv4 or conf directory: under
// /proc/sys every namespace has its own entries of the same name, which
// the kernel's name lookup tells apart by comparing them one by one, so a
// full path costs more the more namespaces the machine has (with fifty
// real servers' namespaces, twice as much as relative opens).
func readSysctls() (map[string]string, error) {
	out := make(map[string]string, 32)
	var errs []error
	root, err := openDir(nil, filepath.Join(procSys, "net/ipv4"))
	if err != nil {
		return out, err
	}
	defer root.Close()
	get := func(dir *os.File, rel string) (string, error) {
		b, err := readSysctl(dir, rel)
		return strings.TrimSpace(string(b)), err
	}
	for _, k := range []string{
		"ip_forward",
		// Compared with the director's IPVS tcp timeout: an idle
		// connection outlives the director's entry when keepalives come
		// later.
		"tcp_keepalive_time",
	} {
		if v, err := get(root, k); err != nil {
			errs = append(errs, err)
		} else {
			out["net.ipv4."+k] = v
		}
	}
	conf, err := openDir(root, "conf")
	if err != nil {
		return out, errors.Join(append(errs, err)...)
	}
	defer conf.Close()
	ifs, err := conf.Readdirnames(-1)
	if err != nil {
		return out, errors.Join(append(errs, err)...)
	}
	sort.Strings(ifs)
	for _, name := range ifs {
		if strings.Contains(name, ".") {
			continue // "eth0.10": a dotted name cannot be a dotted key
		}
		for _, k := range ConfKeys {
			if v, err := get(conf, name+"/"+k); err != nil {
				errs = append(errs, err)
			} else {
				out["net.ipv4.conf."+name+"."+k] = v
			}
		}
	}
	if vs, err := openDir(root, "vs"); err == nil {
		defer vs.Close()
		ents, _ := vs.ReadDir(-1)
		for _, e := range ents {
			if e.IsDir() {
				continue
			}
			if v, err := get(vs, e.Name()); err == nil {
				out["net.ipv4.vs."+e.Name()] = v
			} // write-only entries are skipped
		}
	}
	return out, errors.Join(errs...)
}

// openDir opens the directory name (relative to dir where dir is not nil)
// for reads relative to it (readSysctl).
func openDir(dir *os.File, name string) (*os.File, error) {
	dirfd, path := unix.AT_FDCWD, name
	if dir != nil {
		dirfd, path = int(dir.Fd()), filepath.Join(dir.Name(), name)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

func readCounters() (map[string]int64, error) {
	raw, err := readCountersRaw()
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, countersHint)
	return out, ParseCounters(raw, out)
}

// countersHint is about how many counters a host has (Debian 12's kernel:
// 290 in netstat and snmp).
const countersHint = 320

// readCountersRaw is /proc/net/netstat and /proc/net/snmp, one after the
// other (ParseCounters reads both).
func readCountersRaw() (string, error) {
	var b strings.Builder
	for _, name := range []string{"netstat", "snmp"} {
		c, err := readProc(filepath.Join(procNet, name))
		if err != nil {
			return "", err
		}
		b.Write(c)
		if len(c) > 0 && c[len(c)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.String(), nil
}

// Decode turns what an agent sent in its compact forms into the plain
// data of obs.Facts (CountersRaw into Counters).
func Decode(f *obs.Facts) error {
	if f.CountersRaw == "" {
		return nil
	}
	c := make(map[string]int64, countersHint)
	if err := ParseCounters(f.CountersRaw, c); err != nil {
		return fmt.Errorf("counters: %w", err)
	}
	f.Counters, f.CountersRaw = c, ""
	return nil
}

func readListeners() ([]obs.Listener, error) {
	out := []obs.Listener{}
	// TCP through sock_diag, listeners only (see tcpListeners);
	// /proc/net/tcp would walk and format every connection of the machine.
	socks, err := tcpListeners(unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("sock_diag tcp: %w", err)
	}
	for _, s := range socks {
		out = append(out, obs.Listener{Proto: "tcp", Addr: s.addr.String(), Inode: uint64(s.inode)})
	}
	f, err := os.Open(filepath.Join(procNet, "udp"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	l, err := ParseListeners(f, "udp", "07")
	if err != nil {
		return nil, fmt.Errorf("udp: %w", err)
	}
	return append(append(out, l...), wildcard6Listeners()...), nil
}

// ctLookers is how many conntrack sockets look up a director's test
// connections side by side: each lookup is a round trip that waits for
// the kernel and the scheduler, and the check waits for the last of some
// three hundred at fifty real servers.
const ctLookers = 4

// ctGetAll looks up every query (conntrack -G), on c and on further
// sockets opened here, in this thread's namespace, each used by one
// goroutine; missing entries are left out, and results keep qs's order.
func ctGetAll(c *conntrack.Conn, qs []conntrack.Flow) ([]conntrack.Flow, error) {
	conns := []*conntrack.Conn{c}
	for len(conns) < ctLookers && len(conns)*16 < len(qs) {
		x, err := conntrack.Dial(nil)
		if err != nil {
			break // the ones open do
		}
		defer x.Close()
		conns = append(conns, x)
	}
	res := make([]conntrack.Flow, len(qs))
	found := make([]bool, len(qs))
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for w, cc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(qs); i += len(conns) {
				fl, err := cc.Get(qs[i])
				if errors.Is(err, unix.ENOENT) {
					continue
				}
				if err != nil {
					k := qs[i].TupleOrig
					errs[w] = fmt.Errorf("conntrack -G %s:%d -> %s:%d: %w", k.IP.SourceAddress, k.Proto.SourcePort, k.IP.DestinationAddress, k.Proto.DestinationPort, err)
					return
				}
				res[i], found[i] = fl, true
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := res[:0]
	for i := range res {
		if found[i] {
			out = append(out, res[i])
		}
	}
	return out, nil
}

// tcpListen is TCP_LISTEN of the kernel's TCP states.
const tcpListen = 10

// readIPVS returns nil, nil when the kernel has no IPVS.
func readIPVS() (*obs.IPVSTable, error) {
	f, err := os.Open(filepath.Join(procNet, "ip_vs"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseIPVS(f)
}

// iptablesInUse says which iptables backends hold rules in this namespace:
// iptables-nft rules show up in nftables as xt expressions, and legacy
// tables are listed in ip_tables_names. Running iptables-save only where
// rules exist keeps two process starts off every check.
func iptablesInUse(rules []obs.NftRule) (nft, legacy bool) {
	for _, r := range rules {
		// iptables-nft writes most matches as native expressions: its
		// tables (family ip, filter/nat/mangle/raw/security) tell too.
		if r.Opaque || (r.Family == "ip" && iptablesNftTables[r.Table]) {
			nft = true
			break
		}
	}
	b, err := readProc("/proc/thread-self/net/ip_tables_names")
	legacy = err == nil && strings.TrimSpace(string(b)) != ""
	return nft, legacy
}

// iptablesNftTables are the tables iptables with the nft backend writes.
var iptablesNftTables = map[string]bool{"filter": true, "nat": true, "mangle": true, "raw": true, "security": true}

func iptablesSave(ctx context.Context, nft, legacy bool, fail func(string, error)) string {
	var cmds []string
	if nft {
		cmds = append(cmds, "iptables-nft-save", "iptables-save")
	}
	if legacy {
		cmds = append(cmds, "iptables-legacy-save")
	}
	var out []string
	ran := false
	for _, cmd := range cmds {
		if cmd == "iptables-save" && ran {
			continue // iptables-nft-save already answered for the nft backend
		}
		p, err := exec.LookPath(cmd)
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, CommandTimeout)
		var stdout, stderr bytes.Buffer
		c := exec.CommandContext(cctx, p, "-c")
		c.Stdout, c.Stderr = &stdout, &stderr
		c.WaitDelay = 100 * time.Millisecond
		err = c.Run()
		cancel()
		if err != nil {
			fail(cmd, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String())))
			continue
		}
		ran = ran || cmd == "iptables-nft-save"
		if s := stdout.String(); strings.TrimSpace(s) != "" {
			out = append(out, "# "+cmd+" -c\n"+s)
		}
	}
	return strings.Join(out, "")
}

var tcpStates = []string{"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"}

// readConntrack looks up each connection of of by its original tuple, or
// dumps the whole table when of is empty. A connection without an entry
// is left out: to the classifier, conntrack never saw it.
func readConntrack(of []obs.CTKey) ([]obs.CTEntry, error) {
	c, err := conntrack.Dial(nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var flows []conntrack.Flow
	if len(of) == 0 {
		if flows, err = c.DumpFilter(conntrack.NewFilter().Family(netfilter.ProtoIPv4), nil); err != nil {
			return nil, err
		}
	}
	var qs []conntrack.Flow
	seen := map[obs.CTKey]bool{}
	for _, k := range of {
		if seen[k] {
			continue
		}
		seen[k] = true
		if q, ok := ctQuery(k); ok {
			qs = append(qs, q)
		}
	}
	got, err := ctGetAll(c, qs)
	if err != nil {
		return nil, err
	}
	flows = append(flows, got...)
	out := []obs.CTEntry{}
	for _, fl := range flows {
		if !fl.TupleOrig.IP.SourceAddress.Is4() {
			continue
		}
		e := obs.CTEntry{
			Proto:   protoName(fl.TupleOrig.Proto.Protocol),
			OrigSrc: tupleAddr(fl.TupleOrig.IP.SourceAddress.String(), fl.TupleOrig.Proto.SourcePort, fl.TupleOrig.Proto.Protocol),
			OrigDst: tupleAddr(fl.TupleOrig.IP.DestinationAddress.String(), fl.TupleOrig.Proto.DestinationPort, fl.TupleOrig.Proto.Protocol),
			ReplSrc: tupleAddr(fl.TupleReply.IP.SourceAddress.String(), fl.TupleReply.Proto.SourcePort, fl.TupleReply.Proto.Protocol),
			ReplDst: tupleAddr(fl.TupleReply.IP.DestinationAddress.String(), fl.TupleReply.Proto.DestinationPort, fl.TupleReply.Proto.Protocol),
			Status:  ctStatus(fl.Status),
		}
		if fl.ProtoInfo.TCP != nil && int(fl.ProtoInfo.TCP.State) < len(tcpStates) {
			e.State = tcpStates[fl.ProtoInfo.TCP.State]
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].OrigSrc < out[j].OrigSrc })
	return out, nil
}

// ctQuery is the original tuple of k for a lookup; ok is false for what
// conntrack cannot be asked about this way.
func ctQuery(k obs.CTKey) (conntrack.Flow, bool) {
	var f conntrack.Flow
	src, err1 := netip.ParseAddrPort(k.Src)
	dst, err2 := netip.ParseAddrPort(k.Dst)
	if err1 != nil || err2 != nil || !src.Addr().Unmap().Is4() || !dst.Addr().Unmap().Is4() {
		return f, false
	}
	switch k.Proto {
	case "tcp":
		f.TupleOrig.Proto.Protocol = unix.IPPROTO_TCP
	case "udp":
		f.TupleOrig.Proto.Protocol = unix.IPPROTO_UDP
	default:
		return f, false
	}
	f.TupleOrig.IP.SourceAddress, f.TupleOrig.IP.DestinationAddress = src.Addr().Unmap(), dst.Addr().Unmap()
	f.TupleOrig.Proto.SourcePort, f.TupleOrig.Proto.DestinationPort = src.Port(), dst.Port()
	return f, true
}

func tupleAddr(ip string, port uint16, proto uint8) string {
	if proto == unix.IPPROTO_TCP || proto == unix.IPPROTO_UDP || proto == unix.IPPROTO_SCTP {
		return net.JoinHostPort(ip, fmt.Sprint(port))
	}
	return ip
}

func ctStatus(s conntrack.Status) string {
	names := strings.Split(s.String(), "|")
	if s&conntrack.StatusSeenReply == 0 {
		names = append([]string{"UNREPLIED"}, names...)
	}
	var out []string
	for _, n := range names {
		if n != "NONE" {
			out = append(out, n)
		}
	}
	return strings.Join(out, ",")
}
