package lab

// The IPVS forms of the faults whose nftables injection means something
// else under kernel IPVS. This file's init runs after the fault_*.go files
// (Go runs a package's files' init functions in file-name order) and wraps
// their inject functions: under the ipvs datapath the IPVS form is
// injected, under the others the original one.
//
//   - service-missing: delete the IPVS service (VIP:80/tcp); all-weights-zero:
//     every real server of it weight 0 (IPVS answers ICMP port unreachable
//     from the VIP, ip_vs_leave).
//   - rs-weight-zero: the real server's weight 0 in every service.
//   - director-ftp-helper-missing: unload ip_vs_ftp (kernel-wide: meant for
//     the VM, one lab at a time); Clear loads it again.
//   - icmp-redirect-bypass: kernel IPVS lets redirects out, so the flat lab
//     with datapath ipvs is enough.
//   - director-firewall-drops-requests (nft): under IPVS the requests to the
//     local VIP pass INPUT, not FORWARD: the drop goes into an input chain,
//     ip daddr VIP tcp dport VPORT counter drop.
//   - director-forward-policy-drop: the policy drop and its accepts, and
//     net.ipv4.vs.conntrack=0 (the kernel's default, which the lab's IPVS
//     datapath raises to 1): IPVS connections are then untracked, their
//     replies are not "established" and the policy drops them, as on a
//     Docker host balancing with IPVS without kube-proxy's setting. With
//     vs.conntrack=1 the fault has no effect, and the check rightly says
//     healthy. Clear sets 1 again with the datapath.
//   - persistence-needed (IPVS only): a second FTP service, on its own VIP
//     (PersistenceVIP), whose real servers are reached by direct routing
//     (DR), without persistence; a static finding from the table.

import (
	"context"
	"fmt"
	"os"
	"time"

	cfipvs "github.com/cloudflare/ipvs"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

func init() {
	wrapIPVS := func(id string, ipvsInject func(ctx context.Context, e *env, h *Host, variant string) error) {
		f, ok := faults[id]
		if !ok {
			panic("lab: ipvs form of unknown fault " + id)
		}
		orig := f.inject
		f.inject = func(ctx context.Context, e *env, h *Host, variant string) error {
			if e.st.Options.Datapath == DatapathIPVS {
				return ipvsInject(ctx, e, h, variant)
			}
			return orig(ctx, e, h, variant)
		}
	}
	wrapIPVS("service-missing", injectServiceMissingIPVS)
	wrapIPVS("rs-weight-zero", injectRSWeightZeroIPVS)
	wrapIPVS("director-ftp-helper-missing", injectFTPHelperMissingIPVS)
	wrapIPVS("icmp-redirect-bypass", injectICMPRedirectIPVS)
	origDropReq := faults["director-firewall-drops-requests"].inject
	wrapIPVS("director-firewall-drops-requests", func(ctx context.Context, e *env, h *Host, variant string) error {
		if variant != "nft" {
			return origDropReq(ctx, e, h, variant)
		}
		return injectDropRequestsIPVS(ctx, e, h, variant)
	})

	origPolicy := faults["director-forward-policy-drop"].inject
	wrapIPVS("director-forward-policy-drop", func(ctx context.Context, e *env, h *Host, variant string) error {
		if err := origPolicy(ctx, e, h, variant); err != nil {
			return err
		}
		return setSysctls(e.handle(RoleDirector), []sysctl{{Key: "net.ipv4.vs.conntrack", Value: "0"}})
	})

	register(&fault{
		FaultInfo: FaultInfo{ID: "persistence-needed",
			Summary: "IPVS only: add an FTP service (VIP " + PersistenceVIP + ":21) in direct routing (DR) without persistence",
			Lab:     Options{Datapath: DatapathIPVS}},
		hostKind: RoleDirector,
		inject:   injectPersistenceNeededIPVS,
	})
}

// ftpUnloadWait bounds the wait for ip_vs_ftp's users to go.
const ftpUnloadWait = 150 * time.Second

// NeedsIPVS says a fault can only be injected on the ipvs datapath.
func (f FaultInfo) NeedsIPVS() bool { return f.Lab.Datapath == DatapathIPVS }

// withIPVS runs fn with an IPVS client in the director's namespace.
func (e *env) withIPVS(fn func(ic cfipvs.Client) error) error {
	ic, err := ipvsClient(e.handle(RoleDirector))
	if err != nil {
		return fmt.Errorf("director: %w", err)
	}
	defer closeIPVS(ic)
	return fn(ic)
}

// setIPVSWeights sets weight w for the real servers of svc that match
// (every one when match is nil), and checks the table afterwards.
func setIPVSWeights(ic cfipvs.Client, svc Service, match func(RealServer) bool, w uint32, fwd cfipvs.ForwardType) (int, error) {
	ks, err := ipvsService(svc)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, rs := range svc.RealServers {
		if match != nil && !match(rs) {
			continue
		}
		d, err := ipvsDest(rs, fwd)
		if err != nil {
			return n, err
		}
		d.Weight = w
		if err := ic.UpdateDestination(ks, d); err != nil {
			return n, fmt.Errorf("ipvs edit real server %s of %s: %w", rs.Address, svc, err)
		}
		n++
	}
	dests, err := ic.Destinations(ks)
	if err != nil {
		return n, fmt.Errorf("ipvs list real servers of %s: %w", svc, err)
	}
	for _, d := range dests {
		for _, rs := range svc.RealServers {
			if (match == nil || match(rs)) && d.Address.String() == rs.Address && (d.Weight != w || d.FwdMethod != fwd) {
				return n, fmt.Errorf("ipvs real server %s of %s: weight %d after setting %d", rs.Address, svc, d.Weight, w)
			}
		}
	}
	return n, nil
}

func injectServiceMissingIPVS(ctx context.Context, e *env, h *Host, variant string) error {
	svc, ok := e.st.firstService("tcp")
	if !ok {
		return fmt.Errorf("lab state has no TCP service")
	}
	return e.withIPVS(func(ic cfipvs.Client) error {
		if variant == serviceMissingVariantZ {
			_, err := setIPVSWeights(ic, svc, nil, 0, cfipvs.Masquerade)
			return err
		}
		ks, err := ipvsService(svc)
		if err != nil {
			return err
		}
		if err := ic.RemoveService(ks); err != nil {
			return fmt.Errorf("ipvs delete service %s: %w", svc, err)
		}
		if _, err := ic.Service(ks); err == nil {
			return fmt.Errorf("ipvs service %s still present", svc)
		}
		return nil
	})
}

func injectRSWeightZeroIPVS(ctx context.Context, e *env, h *Host, _ string) error {
	return e.withIPVS(func(ic cfipvs.Client) error {
		total := 0
		for _, svc := range e.st.Services {
			n, err := setIPVSWeights(ic, svc, func(rs RealServer) bool { return rs.Name == h.Role && rs.Weight > 0 }, 0, cfipvs.Masquerade)
			if err != nil {
				return err
			}
			total += n
		}
		if total == 0 {
			return fmt.Errorf("%s is in no service with weight > 0", h.Role)
		}
		return nil
	})
}

func injectFTPHelperMissingIPVS(ctx context.Context, e *env, h *Host, _ string) error {
	if !hasFTP(e.st) {
		return fmt.Errorf("%w: this lab has no FTP service", ErrBadFault)
	}
	if _, err := os.Stat("/sys/module/ip_vs_ftp"); err != nil {
		return nil // not loaded: already the fault
	}
	// Every IPVS connection bound to the FTP application holds the
	// module: the lab's own readiness and earlier checks leave some in
	// TIME_WAIT (2 min under IPVS), so wait for them to expire.
	deadline := time.Now().Add(ftpUnloadWait)
	for {
		err := unix.DeleteModule("ip_vs_ftp", unix.O_NONBLOCK)
		if err == nil {
			break
		}
		if (err != unix.EAGAIN && err != unix.EBUSY && err != unix.EWOULDBLOCK) || time.Now().After(deadline) {
			return fmt.Errorf("unload ip_vs_ftp (kernel-wide; IPVS connections through port 21 hold it until they expire): %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	if _, err := os.Stat("/sys/module/ip_vs_ftp"); err == nil {
		return fmt.Errorf("ip_vs_ftp still loaded")
	}
	return nil
}

func injectICMPRedirectIPVS(ctx context.Context, e *env, h *Host, _ string) error {
	if e.st.Options.Topology != TopologyFlat {
		return fmt.Errorf("%w: icmp-redirect-bypass needs a one-arm lab: lvsdoctor lab up --topology flat --datapath ipvs (this lab: topology %s)",
			ErrBadFault, e.st.Options.Topology)
	}
	return e.sendRedirects(h)
}

// PersistenceVIP is the VIP of the DR FTP service persistence-needed adds
// (not local, not in the topology file: the finding is static, from the
// table, and the lab's own services keep working).
const PersistenceVIP = "203.0.113.101"

func injectPersistenceNeededIPVS(ctx context.Context, e *env, h *Host, _ string) error {
	if e.st.Options.Datapath != DatapathIPVS {
		return fmt.Errorf("%w: persistence-needed needs datapath ipvs (a DR service; this lab: %s)", ErrBadFault, e.st.Options.Datapath)
	}
	var ftp *Service
	for i := range e.st.Services {
		if e.st.Services[i].Kind == KindFTP {
			ftp = &e.st.Services[i]
		}
	}
	if ftp == nil {
		return fmt.Errorf("%w: this lab has no FTP service", ErrBadFault)
	}
	dr := *ftp
	dr.VIP = PersistenceVIP
	return e.withIPVS(func(ic cfipvs.Client) error { return addIPVSService(ic, dr, cfipvs.DirectRoute) })
}

func injectDropRequestsIPVS(ctx context.Context, e *env, h *Host, _ string) error {
	svc, ok := e.st.firstService("tcp")
	if !ok {
		return fmt.Errorf("lab state has no TCP service")
	}
	c, err := nftConn(e.handle(h.Role))
	if err != nil {
		return err
	}
	t := labTable()
	in := addBaseChain(c, t, NftInput, nftables.ChainTypeFilter, nftables.ChainHookInput, nftables.ChainPriorityFilter, nftables.ChainPolicyAccept)
	ex := append(matchVIPPort(svc), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
	c.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: ex, UserData: comment(FirewallDropsRequestsComment)})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if rs, err := findRules(c, NftInput, FirewallDropsRequestsComment); err != nil || len(rs) == 0 {
		return fmt.Errorf("drop rule not found after adding it (%v)", err)
	}
	return nil
}
