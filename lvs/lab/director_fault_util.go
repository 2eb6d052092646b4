package lab

// Helpers shared by the director faults of this family
// (director-firewall-drops-requests, director-forward-policy-drop,
// conntrack-invalid-drop, service-missing, rs-weight-zero, ...).

import (
	"bytes"
	"fmt"
	"net"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// runIptables runs an iptables command (iptables, iptables-nft,
// iptables-legacy) inside the namespace of role.
func (e *env) runIptables(role string, args ...string) error {
	h := e.st.Host(role)
	if h == nil {
		return fmt.Errorf("no host %s", role)
	}
	var out bytes.Buffer
	code, err := Exec(h.Namespace, args, nil, &out, &out)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", role, strings.Join(args, " "), err)
	}
	if code != 0 {
		return fmt.Errorf("%s: %s: exit %d: %s", role, strings.Join(args, " "), code, strings.TrimSpace(out.String()))
	}
	return nil
}

// firstService returns the first service of proto ("" for any).
func (s *State) firstService(proto string) (Service, bool) {
	for _, svc := range s.Services {
		if (proto == "" || svc.Proto == proto) && len(svc.RealServers) > 0 {
			return svc, true
		}
	}
	return Service{}, false
}

// serviceMap adds the anonymous numgen map of svc's real servers (each
// weight times, leaving out the role skip) and returns the expressions that
// load the chosen RIP into register 1; ok is false when no real server is
// left.
func serviceMap(c *nftables.Conn, t *nftables.Table, svc Service, skip string) ([]expr.Any, bool, error) {
	var elems []nftables.SetElement
	for _, rs := range svc.RealServers {
		if rs.Name == skip {
			continue
		}
		for w := 0; w < rs.Weight; w++ {
			elems = append(elems, nftables.SetElement{
				Key: binaryutil.NativeEndian.PutUint32(uint32(len(elems))),
				Val: net.ParseIP(rs.Address).To4(),
			})
		}
	}
	if len(elems) == 0 {
		return nil, false, nil
	}
	set := &nftables.Set{Table: t, Anonymous: true, Constant: true, IsMap: true,
		KeyType: nftables.TypeInteger, DataType: nftables.TypeIPAddr,
		KeyByteOrder: binaryutil.NativeEndian}
	if err := c.AddSet(set, elems); err != nil {
		return nil, false, fmt.Errorf("nftables map for %s: %w", svc, err)
	}
	return []expr.Any{
		&expr.Numgen{Register: 1, Type: unix.NFT_NG_INCREMENTAL, Modulus: uint32(len(elems))},
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetID: set.ID, SetName: set.Name},
	}, true, nil
}

// matchService matches a service's requests (VIP:VPORT, or its mark).
func matchService(svc Service) []expr.Any { return serviceMatch(svc) }

// deleteServiceRule removes the DNAT rule of svc from the director's
// prerouting chain and checks that it is gone.
func (e *env) deleteServiceRule(c *nftables.Conn, svc Service) error {
	rules, err := findRules(c, NftPrerouting, ServiceComment(svc))
	if err != nil {
		return err
	}
	if len(rules) == 0 {
		return fmt.Errorf("director has no DNAT rule for %s", svc)
	}
	for _, r := range rules {
		if err := c.DelRule(r); err != nil {
			return err
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if left, err := findRules(c, NftPrerouting, ServiceComment(svc)); err != nil || len(left) > 0 {
		return fmt.Errorf("DNAT rule for %s still present (%v)", svc, err)
	}
	return nil
}

// addBaseChain adds a base chain to table t (created if missing).
func addBaseChain(c *nftables.Conn, t *nftables.Table, name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority, policy nftables.ChainPolicy) *nftables.Chain {
	c.AddTable(t)
	return c.AddChain(&nftables.Chain{Name: name, Table: t, Type: typ, Hooknum: hook, Priority: prio, Policy: &policy})
}
