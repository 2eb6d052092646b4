package lab

// The ipvs datapath: the director's services live in kernel IPVS,
// configured over generic netlink (github.com/cloudflare/ipvs) from inside
// the director's namespace: NAT (masquerading) forwarding, rr or wrr, the
// VIP local on the director (an address of eth0, as for the other
// datapaths). nftables keeps what IPVS does not do:
//
//	table ip lvsdoctor {
//	  chain mangle { type filter hook prerouting priority mangle;
//	    ip daddr VIP tcp dport 8080 counter meta mark set 1 }   (firewall-mark services)
//	  chain postrouting { type nat hook postrouting priority srcnat;
//	    ip saddr 198.18.0.0/24 oifname "eth0" counter masquerade }  (traffic the real servers start)
//	  chain filter_forward { type filter hook forward priority filter; policy accept; }
//	}
//
// net.ipv4.vs.conntrack is 1 (IPVS keeps conntrack entries for its
// connections, so the masquerade and a stateful firewall see them); the FTP
// service needs the ip_vs_ftp module, loaded when missing.

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"

	cfipvs "github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"
	"github.com/google/nftables"
	"github.com/vishvananda/netns"
)

// DatapathIPVS is kernel IPVS (netlink) with nftables for masquerade and
// filtering.
const DatapathIPVS = "ipvs"

// ErrNoIPVS says the running kernel has no IPVS.
var ErrNoIPVS = errors.New("IPVS is not available in this kernel")

// IPVSAvailable returns nil when the kernel answers the IPVS generic
// netlink family, else an error wrapping ErrNoIPVS with the reason.
func IPVSAvailable() error {
	c, err := cfipvs.New()
	if err == nil {
		defer closeIPVS(c)
		_, err = c.Info()
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("%w: %v (netlink family IPVS not found: the ip_vs module is not loaded or not built; try modprobe ip_vs, or use --datapath nft)", ErrNoIPVS, err)
	}
	return fmt.Errorf("%w: %v", ErrNoIPVS, err)
}

// normalizeDatapathIPVS resolves "auto" (ipvs when the kernel has it, nft
// otherwise) and checks that "ipvs" can work here. It returns the datapath
// to use; other datapaths pass through unchanged.
func normalizeDatapathIPVS(dp string) (string, error) {
	switch dp {
	case "", "auto":
		if IPVSAvailable() == nil {
			return DatapathIPVS, nil
		}
		return DatapathNft, nil
	case DatapathIPVS:
		if err := IPVSAvailable(); err != nil {
			return "", fmt.Errorf("datapath ipvs: %w", err)
		}
	}
	return dp, nil
}

func closeIPVS(c cfipvs.Client) {
	if cl, ok := c.(io.Closer); ok {
		cl.Close()
	}
}

// ipvsClient opens an IPVS netlink client bound to namespace ns (the
// socket keeps the namespace it was created in).
func ipvsClient(ns netns.NsHandle) (cfipvs.Client, error) {
	var c cfipvs.Client
	err := inNS(ns, func() error {
		var err error
		c, err = cfipvs.New()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoIPVS, err)
	}
	return c, nil
}

// ipvsService is the kernel form of a lab service.
func ipvsService(s Service) (cfipvs.Service, error) {
	out := cfipvs.Service{Family: cfipvs.INET, Scheduler: s.Scheduler, Netmask: netmask.MaskFrom(32, 32)}
	if out.Scheduler == "" {
		out.Scheduler = "rr"
	}
	if s.Proto == "fwmark" {
		out.FWMark = s.Mark
		return out, nil
	}
	a, err := netip.ParseAddr(s.VIP)
	if err != nil {
		return out, fmt.Errorf("service %s: VIP: %w", s, err)
	}
	out.Address, out.Port = a.Unmap(), uint16(s.Port)
	switch s.Proto {
	case "tcp":
		out.Protocol = cfipvs.TCP
	case "udp":
		out.Protocol = cfipvs.UDP
	default:
		return out, fmt.Errorf("service %s: protocol %q", s, s.Proto)
	}
	return out, nil
}

func ipvsDest(rs RealServer, fwd cfipvs.ForwardType) (cfipvs.Destination, error) {
	a, err := netip.ParseAddr(rs.Address)
	if err != nil {
		return cfipvs.Destination{}, fmt.Errorf("real server %s: %w", rs.Name, err)
	}
	return cfipvs.Destination{Address: a.Unmap(), Port: uint16(rs.Port), Family: cfipvs.INET,
		FwdMethod: fwd, Weight: uint32(rs.Weight)}, nil
}

// applyIPVS is the ipvs datapath (see the file comment).
func (e *env) applyIPVS() error {
	ns := e.handle(RoleDirector)
	c, err := nftConn(ns)
	if err != nil {
		return err
	}
	c.FlushRuleset()
	t := c.AddTable(labTable())
	accept := nftables.ChainPolicyAccept
	mangle := c.AddChain(&nftables.Chain{Name: NftMangle, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityMangle, Policy: &accept})
	post := c.AddChain(&nftables.Chain{Name: NftPostrouting, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	c.AddChain(&nftables.Chain{Name: NftForward, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	for _, svc := range e.st.Services {
		if svc.Proto == "fwmark" {
			c.AddRule(markRule(t, mangle, svc))
		}
	}
	c.AddRule(e.masqueradeRule(t, post))
	if err := c.Flush(); err != nil {
		return fmt.Errorf("director nftables: %w", err)
	}
	if hasFTP(e.st) {
		if err := loadModule("ip_vs_ftp"); err != nil {
			return fmt.Errorf("director: FTP service under IPVS: %w", err)
		}
	}
	// Without the module, the sysctl directory does not exist: IPVS
	// registers it per namespace when the first client asks.
	ic, err := ipvsClient(ns)
	if err != nil {
		return fmt.Errorf("director: %w", err)
	}
	defer closeIPVS(ic)
	if err := setSysctls(ns, []sysctl{{Key: "net.ipv4.vs.conntrack", Value: "1"}}); err != nil {
		return fmt.Errorf("director: %w", err)
	}
	if err := ipvsFlush(ic); err != nil {
		return err
	}
	for _, svc := range e.st.Services {
		if err := addIPVSService(ic, svc, cfipvs.Masquerade); err != nil {
			return fmt.Errorf("director: %w", err)
		}
	}
	return nil
}

// addIPVSService adds svc and its real servers, forwarded by fwd.
func addIPVSService(ic cfipvs.Client, svc Service, fwd cfipvs.ForwardType) error {
	ks, err := ipvsService(svc)
	if err != nil {
		return err
	}
	if err := ic.CreateService(ks); err != nil {
		return fmt.Errorf("ipvs add service %s: %w", svc, err)
	}
	for _, rs := range svc.RealServers {
		d, err := ipvsDest(rs, fwd)
		if err != nil {
			return err
		}
		if err := ic.CreateDestination(ks, d); err != nil {
			return fmt.Errorf("ipvs add real server %s to %s: %w", rs.Address, svc, err)
		}
	}
	return nil
}

// ipvsFlush removes every IPVS service of the client's namespace.
func ipvsFlush(ic cfipvs.Client) error {
	svcs, err := ic.Services()
	if errors.Is(err, os.ErrNotExist) {
		return nil // cloudflare/ipvs answers an empty table with ErrNotExist
	}
	if err != nil {
		return fmt.Errorf("director: ipvs list services: %w", err)
	}
	for _, s := range svcs {
		if err := ic.RemoveService(s.Service); err != nil {
			return fmt.Errorf("director: ipvs remove service: %w", err)
		}
	}
	return nil
}

// loadModule loads a kernel module unless /sys/module has it, with
// modprobe (PATH, /sbin, /usr/sbin).
func loadModule(name string) error {
	if _, err := os.Stat("/sys/module/" + name); err == nil {
		return nil
	}
	var out []byte
	var err error = errors.New("modprobe not found")
	for _, p := range []string{"modprobe", "/sbin/modprobe", "/usr/sbin/modprobe", "/bin/modprobe"} {
		path, lerr := exec.LookPath(p)
		if lerr != nil {
			continue
		}
		out, err = exec.Command(path, name).CombinedOutput()
		break
	}
	if err != nil {
		return fmt.Errorf("modprobe %s: %v %s", name, err, strings.TrimSpace(string(out)))
	}
	if _, err := os.Stat("/sys/module/" + name); err != nil {
		return fmt.Errorf("modprobe %s: module not loaded afterwards", name)
	}
	return nil
}
