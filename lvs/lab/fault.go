package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
)

// FaultInfo describes one injectable fault (FAULTS.md id).
type FaultInfo struct {
	ID          string   `json:"id"`
	Summary     string   `json:"summary"`
	Variants    []string `json:"variants,omitempty"` // the first is the default
	DefaultHost string   `json:"default_host"`       // rs1 or director
	// Lab is the lab the fault needs when it is not the default one (a
	// flat topology, another datapath); lab matrix builds it.
	Lab Options `json:"lab,omitempty"`
}

type fault struct {
	FaultInfo
	// hostKind: "rs" (any real server) or a role.
	hostKind string
	inject   func(ctx context.Context, e *env, h *Host, variant string) error
	// undo, when set, removes what Clear's re-application of the healthy
	// config does not (e.g. iptables-legacy rules); it runs before it.
	undo func(ctx context.Context, e *env, h *Host, variant string) error
}

var faults = map[string]*fault{}

func register(f *fault) {
	if f.hostKind == "rs" {
		f.DefaultHost = "rs1"
	} else {
		f.DefaultHost = f.hostKind
	}
	faults[f.ID] = f
}

// List returns the injectable faults, sorted by id.
func List() []FaultInfo {
	var r []FaultInfo
	for _, f := range faults {
		r = append(r, f.FaultInfo)
	}
	sort.Slice(r, func(i, j int) bool { return r[i].ID < r[j].ID })
	return r
}

func faultIDs() string {
	var ids []string
	for _, f := range List() {
		ids = append(ids, f.ID)
	}
	return strings.Join(ids, ", ")
}

// ParseFaultSpec splits "ID@HOST" into id and host (host empty if absent).
func ParseFaultSpec(spec string) (id, host string) {
	id, host, _ = strings.Cut(spec, "@")
	return id, host
}

// ErrBadFault marks errors caused by an unknown id, variant or host (usage
// errors).
var ErrBadFault = errors.New("bad fault")

// Inject injects fault id (it may be "ID@HOST") into lab name on host (a
// role such as rs2, or empty for the fault's default) with variant (empty
// for the default), and verifies that the change took. Calls add up.
func Inject(ctx context.Context, name, id, host, variant string) error {
	if i, h := ParseFaultSpec(id); h != "" {
		if host != "" && host != h {
			return fmt.Errorf("%w: host given twice (%s and %s)", ErrBadFault, h, host)
		}
		id, host = i, h
	}
	f, ok := faults[id]
	if !ok {
		return fmt.Errorf("%w: unknown fault %q (valid: %s)", ErrBadFault, id, faultIDs())
	}
	if variant == "" && len(f.Variants) > 0 {
		variant = f.Variants[0]
	}
	if variant != "" {
		okv := false
		for _, v := range f.Variants {
			okv = okv || v == variant
		}
		if !okv {
			if len(f.Variants) == 0 {
				return fmt.Errorf("%w: fault %s has no variants (got %q)", ErrBadFault, id, variant)
			}
			return fmt.Errorf("%w: fault %s has no variant %q (valid: %s)", ErrBadFault, id, variant, strings.Join(f.Variants, ", "))
		}
	}
	if err := CheckPrivileges(); err != nil {
		return err
	}
	st, err := Load(name)
	if err != nil {
		return err
	}
	if host == "" {
		host = f.DefaultHost
	}
	h, err := st.ResolveHost(host)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadFault, err)
	}
	if (f.hostKind == "rs" && !isRSRole(h.Role)) || (f.hostKind != "rs" && h.Role != f.hostKind) {
		want := f.hostKind
		if want == "rs" {
			want = "a real server (" + strings.Join(st.RealServerRoles(), ", ") + ")"
		}
		return fmt.Errorf("%w: fault %s applies to %s, not %s", ErrBadFault, id, want, h.Role)
	}
	e, err := open(st)
	if err != nil {
		return err
	}
	defer e.close()
	ierr := f.inject(ctx, e, h, variant)
	// Record even a partial injection, so that Clear knows about it.
	st.Faults = append(st.Faults, FaultRecord{ID: id, Host: h.Role, Variant: variant, Time: time.Now().UTC()})
	if err := st.save(); err != nil {
		return errors.Join(ierr, err)
	}
	if ierr != nil {
		return fmt.Errorf("inject %s on %s: %w", id, h.Role, ierr)
	}
	return nil
}

// Clear restores the healthy lab: every host's sysctls, links, addresses,
// routes, neighbour entries and rulesets are re-applied, the director's
// conntrack table flushed, stopped services restarted; then it waits until
// the lab is ready again.
func Clear(ctx context.Context, name string) error {
	if err := CheckPrivileges(); err != nil {
		return err
	}
	st, err := Load(name)
	if err != nil {
		return err
	}
	e, err := open(st)
	if err != nil {
		return err
	}
	defer e.close()
	var errs []error
	for i := len(st.Faults) - 1; i >= 0; i-- {
		rec := st.Faults[i]
		f, ok := faults[rec.ID]
		if !ok || f.undo == nil {
			continue
		}
		if h := st.Host(rec.Host); h != nil {
			if err := f.undo(ctx, e, h, rec.Variant); err != nil {
				errs = append(errs, fmt.Errorf("undo %s on %s: %w", rec.ID, rec.Host, err))
			}
		}
	}
	if err := e.applyAll(ctx, false); err != nil {
		errs = append(errs, err)
	}
	if err := e.applyDatapath(); err != nil {
		errs = append(errs, err)
	}
	if err := e.applyRouterRules(); err != nil {
		errs = append(errs, err)
	}
	if err := e.flushConntrack(); err != nil {
		errs = append(errs, err)
	}
	if err := e.startServices(ctx, true); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		st.Faults = nil
	}
	if err := st.save(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		errs = append(errs, e.waitReady(ctx, 10*time.Second))
	}
	return errors.Join(errs...)
}

func (e *env) flushConntrack() error {
	hn, err := e.nl(RoleDirector)
	if err != nil {
		return err
	}
	defer hn.Close()
	if err := hn.ConntrackTableFlush(netlink.ConntrackTable); err != nil {
		return fmt.Errorf("director: flush conntrack: %w", err)
	}
	return nil
}

// Addressing read back from the state (faults derive what they touch from
// it, not from constants).

// ifaceAddr returns the first address of host's interface ifname.
func (s *State) ifaceAddr(role, ifname string) (net.IP, *net.IPNet) {
	h := s.Host(role)
	if h == nil {
		return nil, nil
	}
	for _, i := range h.Ifaces {
		if i.Name == ifname && len(i.Addrs) > 0 {
			ip, n, err := net.ParseCIDR(i.Addrs[0])
			if err == nil {
				return ip.To4(), n
			}
		}
	}
	return nil, nil
}

// ClientIP is the client's address.
func (s *State) ClientIP() net.IP { ip, _ := s.ifaceAddr(RoleClient, "eth0"); return ip }

// vipIface is the director interface that holds the VIP.
func (s *State) vipIface() *Iface {
	d := s.Host(RoleDirector)
	vip := s.Services[0].VIP
	for i := range d.Ifaces {
		for _, a := range d.Ifaces[i].Addrs {
			if strings.HasPrefix(a, vip+"/") {
				return &d.Ifaces[i]
			}
		}
	}
	return &d.Ifaces[0]
}

// privIface is the director interface on the real servers' LAN.
func (s *State) privIface() (*Iface, *net.IPNet) {
	d := s.Host(RoleDirector)
	rip := net.ParseIP(s.Services[0].RealServers[0].Address)
	for i := range d.Ifaces {
		for _, a := range d.Ifaces[i].Addrs {
			if _, n, err := net.ParseCIDR(a); err == nil && n.Contains(rip) {
				return &d.Ifaces[i], n
			}
		}
	}
	return nil, nil
}

// routeGet is "ip route get dst" in the namespace of role.
func (e *env) routeGet(role string, dst net.IP) (*netlink.Route, error) {
	hn, err := e.nl(role)
	if err != nil {
		return nil, err
	}
	defer hn.Close()
	rs, err := hn.RouteGet(dst)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("no route to %s", dst)
	}
	return &rs[0], nil
}

func (e *env) checkSysctl(role, key, want string) error {
	got, err := readSysctl(e.handle(role), key)
	if err != nil {
		return fmt.Errorf("%s: read %s: %w", role, key, err)
	}
	if got != want {
		return fmt.Errorf("%s: %s is %s, want %s", role, key, got, want)
	}
	return nil
}
