package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// env is an open lab: its state and a handle per namespace.
type env struct {
	st *State
	mu sync.Mutex
	ns map[string]netns.NsHandle // by role
}

func (e *env) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, h := range e.ns {
		h.Close()
	}
	e.ns = nil
}

func (e *env) handle(role string) netns.NsHandle {
	e.mu.Lock()
	defer e.mu.Unlock()
	h, ok := e.ns[role]
	if !ok {
		return -1
	}
	return h
}

// open opens the namespaces of an existing lab.
func open(st *State) (*env, error) {
	e := &env{st: st, ns: map[string]netns.NsHandle{}}
	for _, h := range st.Hosts {
		nh, err := netns.GetFromName(h.Namespace)
		if err != nil {
			e.close()
			return nil, fmt.Errorf("lab %s: namespace %s: %w (the lab is broken: run 'lvsdoctor lab down --name %s' and up again)", st.Name, h.Namespace, err, st.Name)
		}
		e.ns[h.Role] = nh
	}
	return e, nil
}

// nl opens a netlink handle inside the namespace of role.
func (e *env) nl(role string) (*netlink.Handle, error) {
	h := e.handle(role)
	if h < 0 {
		return nil, fmt.Errorf("no namespace for %s", role)
	}
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		return nil, fmt.Errorf("%s: netlink: %w", role, err)
	}
	return nh, nil
}

// Normalize fills defaults (name lvsd, 2 real servers, datapath nft) and
// validates the options; its errors are the user's (bad input).
func (o *Options) Normalize() error { return o.normalize() }

func (o *Options) normalize() error {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if err := ValidateName(o.Name); err != nil {
		return err
	}
	if o.RealServers == 0 {
		o.RealServers = 2
	}
	if o.RealServers < 1 || o.RealServers > MaxRealServers {
		return fmt.Errorf("realservers %d: must be between 1 and %d", o.RealServers, MaxRealServers)
	}
	switch o.Datapath {
	case "", "auto", DatapathNft, DatapathNftStateless, DatapathIPVS:
		dp, err := normalizeDatapathIPVS(o.Datapath) // auto: ipvs where the kernel has it
		if err != nil {
			return err
		}
		o.Datapath = dp
	default:
		return fmt.Errorf("datapath %q: valid are auto, nft, nft-stateless, ipvs", o.Datapath)
	}
	switch o.Topology {
	case "":
		o.Topology = TopologyNAT
	case TopologyNAT, TopologyFlat, TopologyClientOnDirector:
	default:
		return fmt.Errorf("topology %q: valid are nat, flat, client-on-director", o.Topology)
	}
	if o.Topology == TopologyClientOnDirector && o.Datapath == DatapathNftStateless {
		return fmt.Errorf("topology client-on-director needs datapath nft: the stateless datapath does not balance the director's own connections")
	}
	if len(o.Weights) > 0 {
		if len(o.Weights) != o.RealServers {
			return fmt.Errorf("weights: %d given for %d real servers", len(o.Weights), o.RealServers)
		}
		sum := 0
		for _, w := range o.Weights {
			if w < 0 || w > 100 {
				return fmt.Errorf("weight %d: must be between 0 and 100", w)
			}
			sum += w
		}
		if sum == 0 {
			return errors.New("weights: at least one must be above 0")
		}
	}
	return nil
}

// Exists reports whether anything of lab name is present (state or a
// namespace).
func Exists(name string) bool {
	if _, err := os.Stat(StateDir(name)); err == nil {
		return true
	}
	return len(labNamespaces(name)) > 0
}

// Up builds the lab. On any error, or when ctx is cancelled, it removes
// what it made. The returned state is also saved (see Load).
func Up(ctx context.Context, o Options) (st *State, err error) {
	if err := o.normalize(); err != nil {
		return nil, err
	}
	if err := CheckPrivileges(); err != nil {
		return nil, err
	}
	if o.SSH || o.SSHUser != "" {
		if !o.SSH {
			return nil, fmt.Errorf("--ssh-user needs --ssh")
		}
		if err := checkSSHPrereqs(o); err != nil {
			return nil, err
		}
	}
	if Exists(o.Name) {
		return nil, fmt.Errorf("lab %s already exists (run 'lvsdoctor lab down --name %s' first)", o.Name, o.Name)
	}
	progress := o.Progress
	if progress == nil {
		progress = func(string) {}
	}
	start := time.Now()
	st = plan(o)
	st.Created = start.UTC()
	e := &env{st: st, ns: map[string]netns.NsHandle{}}
	defer func() {
		if err != nil {
			e.close()
			if derr := Down(o.Name); derr != nil {
				err = errors.Join(err, fmt.Errorf("cleanup: %w", derr))
			}
			st = nil
		}
	}()
	if err := os.MkdirAll(StateDir(o.Name), 0o755); err != nil {
		return nil, err
	}
	if err := st.save(); err != nil {
		return nil, err
	}

	progress("namespaces...")
	if err := e.createNamespaces(ctx); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	progress("links...")
	if err := e.applyAll(ctx, true); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	progress("datapath...")
	if err := e.applyDatapath(); err != nil {
		return nil, err
	}
	if err := e.applyRouterRules(); err != nil {
		return nil, err
	}
	progress("services...")
	if err := e.startServices(ctx, false); err != nil {
		return nil, err
	}
	if err := st.save(); err != nil {
		return nil, err
	}
	if err := e.waitReady(ctx, 10*time.Second); err != nil {
		return nil, err
	}
	if o.SSH {
		progress("management network and sshd...")
		if err := e.upSSH(ctx); err != nil {
			return nil, err
		}
	}
	if err := st.save(); err != nil {
		return nil, err
	}
	e.close()
	progress(fmt.Sprintf("ready in %.1fs", time.Since(start).Seconds()))
	return st, nil
}

// parallel runs fn for every item with at most n at once and joins errors.
func parallel[T any](ctx context.Context, n int, items []T, fn func(T) error) error {
	sem := make(chan struct{}, n)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, it := range items {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(it); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func hostPtrs(st *State) []*Host {
	var r []*Host
	for i := range st.Hosts {
		r = append(r, &st.Hosts[i])
	}
	return r
}

func (e *env) createNamespaces(ctx context.Context) error {
	st := e.st
	st.Inodes = map[string]uint64{}
	return parallel(ctx, 16, hostPtrs(st), func(h *Host) error {
		nh, err := createNS(h.Namespace, func() error {
			return writeSysctls(hostSysctls(h, false))
		})
		if nh >= 0 {
			e.mu.Lock()
			e.ns[h.Role] = nh
			var s unix.Stat_t
			if unix.Fstat(int(nh), &s) == nil {
				st.Inodes[h.Namespace] = s.Ino
			}
			e.mu.Unlock()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", h.Namespace, err)
		}
		return nil
	})
}

// applyAll brings every host to its healthy configuration (idempotent).
func (e *env) applyAll(ctx context.Context, fresh bool) error {
	if err := e.applySwitch(); err != nil {
		return err
	}
	var hosts []*Host
	for _, h := range hostPtrs(e.st) {
		if h.Role != RoleSwitch {
			hosts = append(hosts, h)
		}
	}
	return parallel(ctx, 16, hosts, func(h *Host) error {
		if err := e.applyHost(h, fresh); err != nil {
			return fmt.Errorf("%s: %w", h.Role, err)
		}
		return nil
	})
}

// applySwitch makes the two bridges in the switch namespace and removes
// any port that is not a lab peer.
func (e *env) applySwitch() error {
	sw, err := e.nl(RoleSwitch)
	if err != nil {
		return err
	}
	defer sw.Close()
	if err := setSysctls(e.handle(RoleSwitch), hostSysctls(e.st.Host(RoleSwitch), false)); err != nil {
		return fmt.Errorf("sw: %w", err)
	}
	if err := linkUp(sw, "lo"); err != nil {
		return fmt.Errorf("sw: %w", err)
	}
	want := map[string]bool{"lo": true}
	for _, name := range []string{"pub", "priv"} {
		want[name] = true
		if _, err := sw.LinkByName(name); err != nil {
			br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
			if err := sw.LinkAdd(br); err != nil {
				return fmt.Errorf("sw: bridge %s: %w", name, err)
			}
		}
		if err := linkUp(sw, name); err != nil {
			return fmt.Errorf("sw: %w", err)
		}
	}
	for _, h := range e.st.Hosts {
		for _, i := range h.Ifaces {
			want[i.Peer] = true
		}
	}
	links, err := sw.LinkList()
	if err != nil {
		return fmt.Errorf("sw: %w", err)
	}
	for _, l := range links {
		if !want[l.Attrs().Name] {
			if err := sw.LinkDel(l); err != nil {
				return fmt.Errorf("sw: delete stray link %s: %w", l.Attrs().Name, err)
			}
		}
	}
	return nil
}

func linkUp(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("link %s up: %w", name, err)
	}
	return nil
}

// applyHost brings one host (not the switch) to its healthy configuration:
// links and their switch ports, addresses, sysctls, routes, neighbour
// table, and an empty ruleset (the director's datapath is applyDatapath).
func (e *env) applyHost(h *Host, fresh bool) error {
	sw, err := e.nl(RoleSwitch)
	if err != nil {
		return err
	}
	defer sw.Close()
	hn, err := e.nl(h.Role)
	if err != nil {
		return err
	}
	defer hn.Close()
	if err := linkUp(hn, "lo"); err != nil {
		return err
	}
	want := map[string]bool{"lo": true}
	if e.st.SSH != nil {
		want[MgmtIface] = true // the management network (ssh.go) stays
	}
	for i := range h.Ifaces {
		ifc := &h.Ifaces[i]
		want[ifc.Name] = true
		l, err := hn.LinkByName(ifc.Name)
		if err != nil {
			// (Re)create the veth: the host end directly in the host's
			// namespace, the peer directly in the switch's.
			if old, err := sw.LinkByName(ifc.Peer); err == nil {
				_ = sw.LinkDel(old)
			}
			v := &netlink.Veth{
				LinkAttrs:     netlink.LinkAttrs{Name: ifc.Name, Namespace: netlink.NsFd(int(e.handle(h.Role)))},
				PeerName:      ifc.Peer,
				PeerNamespace: netlink.NsFd(int(e.handle(RoleSwitch))),
			}
			if err := sw.LinkAdd(v); err != nil {
				return fmt.Errorf("veth %s/%s: %w", ifc.Name, ifc.Peer, err)
			}
			if l, err = hn.LinkByName(ifc.Name); err != nil {
				return fmt.Errorf("veth %s: %w", ifc.Name, err)
			}
		}
		ifc.MAC = l.Attrs().HardwareAddr.String()
		peer, err := sw.LinkByName(ifc.Peer)
		if err != nil {
			return fmt.Errorf("switch port %s: %w", ifc.Peer, err)
		}
		br, err := sw.LinkByName(ifc.Bridge)
		if err != nil {
			return fmt.Errorf("bridge %s: %w", ifc.Bridge, err)
		}
		if peer.Attrs().MasterIndex != br.Attrs().Index {
			if err := sw.LinkSetMaster(peer, br); err != nil {
				return fmt.Errorf("switch port %s to %s: %w", ifc.Peer, ifc.Bridge, err)
			}
		}
		if err := sw.LinkSetUp(peer); err != nil {
			return fmt.Errorf("switch port %s up: %w", ifc.Peer, err)
		}
		if err := hn.LinkSetUp(l); err != nil {
			return fmt.Errorf("link %s up: %w", ifc.Name, err)
		}
		if err := applyAddrs(hn, l, ifc.Addrs, fresh); err != nil {
			return fmt.Errorf("%s: %w", ifc.Name, err)
		}
	}
	if !fresh {
		links, err := hn.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			if !want[l.Attrs().Name] {
				if err := hn.LinkDel(l); err != nil {
					return fmt.Errorf("delete stray link %s: %w", l.Attrs().Name, err)
				}
			}
		}
	}
	if err := setSysctls(e.handle(h.Role), hostSysctls(h, true)); err != nil {
		return err
	}
	if err := applyRoutes(hn, h, fresh); err != nil {
		return err
	}
	if !fresh {
		if err := cleanNeighbours(hn); err != nil {
			return err
		}
		if h.Role != RoleDirector && h.Role != RoleRouter {
			if err := flushRuleset(e.handle(h.Role)); err != nil {
				return err
			}
		}
	}
	return nil
}

func applyAddrs(hn *netlink.Handle, l netlink.Link, addrs []string, fresh bool) error {
	want := map[string]bool{}
	for _, a := range addrs {
		want[a] = true
	}
	if !fresh {
		have, err := hn.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, a := range have {
			if !want[a.IPNet.String()] {
				if err := hn.AddrDel(l, &a); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
					return fmt.Errorf("delete address %s: %w", a.IPNet, err)
				}
			}
		}
	}
	for _, a := range addrs {
		ad, err := netlink.ParseAddr(a)
		if err != nil {
			return err
		}
		if err := hn.AddrReplace(l, ad); err != nil {
			return fmt.Errorf("address %s: %w", a, err)
		}
	}
	return nil
}

// applyRoutes leaves only the kernel's connected routes and the host's
// default route in the main table.
func applyRoutes(hn *netlink.Handle, h *Host, fresh bool) error {
	if !fresh {
		routes, err := hn.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.Protocol == unix.RTPROT_KERNEL {
				continue
			}
			if err := hn.RouteDel(&r); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("delete route %s: %w", r, err)
			}
		}
	}
	if h.Gateway == "" {
		return nil
	}
	r := &netlink.Route{Dst: nil, Gw: net.ParseIP(h.Gateway), Table: unix.RT_TABLE_MAIN}
	if err := hn.RouteReplace(r); err != nil {
		return fmt.Errorf("default via %s: %w", h.Gateway, err)
	}
	return nil
}

// cleanNeighbours removes permanent entries (faults pin some) and failed
// ones (a failed ARP would delay the next connection).
func cleanNeighbours(hn *netlink.Handle) error {
	ns, err := hn.NeighList(0, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	for _, n := range ns {
		if n.State&(netlink.NUD_PERMANENT|netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) != 0 {
			if err := hn.NeighDel(&n); err != nil && !errors.Is(err, syscall.ENOENT) {
				return fmt.Errorf("delete neighbour %s: %w", n.IP, err)
			}
		}
	}
	return nil
}

// labNamespaces lists the namespaces under /run/netns that belong to lab
// name (NAME-ROLE with a lab role).
func labNamespaces(name string) []string {
	ents, err := os.ReadDir(NetnsDir)
	if err != nil {
		return nil
	}
	var r []string
	for _, d := range ents {
		n := d.Name()
		if len(n) > len(name)+1 && n[:len(name)+1] == name+"-" && roleRE.MatchString(n[len(name)+1:]) {
			r = append(r, n)
		}
	}
	return r
}

func nsInode(name string) (uint64, bool) {
	var s unix.Stat_t
	if err := unix.Stat(filepath.Join(NetnsDir, name), &s); err != nil {
		return 0, false
	}
	return s.Ino, true
}
