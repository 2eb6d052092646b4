package lab

import (
	"fmt"
	"net"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Names in the director's ruleset (table ip lvsdoctor).
const (
	NftTable       = "lvsdoctor"
	NftPrerouting  = "prerouting"
	NftPostrouting = "postrouting"
	NftForward     = "filter_forward" // "fwd" is reserved in nft
	// CommentPrefix starts the comment of every rule the lab writes;
	// faults use FaultCommentPrefix + id.
	CommentPrefix      = "lvsdoctor: "
	FaultCommentPrefix = "lvsdoctor fault: "
)

func nftConn(ns netns.NsHandle) (*nftables.Conn, error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return c, nil
}

// flushRuleset removes every nftables table of the namespace.
func flushRuleset(ns netns.NsHandle) error {
	c, err := nftConn(ns)
	if err != nil {
		return err
	}
	c.FlushRuleset()
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables flush ruleset: %w", err)
	}
	return nil
}

func comment(s string) []byte { return userdata.AppendString(nil, userdata.TypeComment, s) }

// Rule building blocks; every match loads into register 1.
func matchIPAddr(offset uint32, ip net.IP) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ip.To4()},
	}
}

func matchIPNet(offset uint32, n *net.IPNet) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte(n.Mask), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: n.IP.To4()},
	}
}

func protoNum(proto string) byte {
	if proto == "udp" {
		return unix.IPPROTO_UDP
	}
	return unix.IPPROTO_TCP
}

// matchPort matches the L4 protocol and the port at offset 0 (sport) or 2
// (dport).
func matchPort(proto string, offset uint32, port int) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{protoNum(proto)}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: offset, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(uint16(port))},
	}
}

func matchOifname(name string) []expr.Any {
	b := make([]byte, 16)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
	}
}

func labTable() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyIPv4, Name: NftTable}
}

func labChain(t *nftables.Table, name string) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: t}
}

// MasqueradeComment is the comment of the director's masquerade rule.
func MasqueradeComment() string {
	return CommentPrefix + "masquerade " + PrivNet.String() + " out eth0"
}

// ServiceComment is the comment of a service's DNAT rule.
func ServiceComment(s Service) string { return CommentPrefix + "service " + s.String() }

// applyDatapath replaces the director's ruleset with the healthy one:
//
//	table ip lvsdoctor {
//	  chain prerouting { type nat hook prerouting priority dstnat;
//	    ip daddr VIP tcp dport 80 counter dnat to numgen inc mod N map { 0 : RIP1, ... } }
//	  chain postrouting { type nat hook postrouting priority srcnat;
//	    ip saddr 198.18.0.0/24 oifname "eth0" counter masquerade }
//	  chain filter_forward { type filter hook forward priority filter; policy accept; }
//	}
func (e *env) applyDatapath() error {
	ns := e.handle(RoleDirector)
	c, err := nftConn(ns)
	if err != nil {
		return err
	}
	c.FlushRuleset()
	t := c.AddTable(labTable())
	pre := c.AddChain(&nftables.Chain{Name: NftPrerouting, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
	post := c.AddChain(&nftables.Chain{Name: NftPostrouting, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	accept := nftables.ChainPolicyAccept
	c.AddChain(&nftables.Chain{Name: NftForward, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})

	for _, svc := range e.st.Services {
		// wrr: each real server appears weight times in the map.
		var elems []nftables.SetElement
		for _, rs := range svc.RealServers {
			for w := 0; w < rs.Weight; w++ {
				elems = append(elems, nftables.SetElement{
					Key: binaryutil.NativeEndian.PutUint32(uint32(len(elems))),
					Val: net.ParseIP(rs.Address).To4(),
				})
			}
		}
		if len(elems) == 0 {
			continue // every weight 0: no rule, the director's own stack answers
		}
		set := &nftables.Set{Table: t, Anonymous: true, Constant: true, IsMap: true,
			KeyType: nftables.TypeInteger, DataType: nftables.TypeIPAddr,
			KeyByteOrder: binaryutil.NativeEndian}
		if err := c.AddSet(set, elems); err != nil {
			return fmt.Errorf("nftables map for %s: %w", svc, err)
		}
		var ex []expr.Any
		ex = append(ex, matchIPAddr(16, net.ParseIP(svc.VIP))...)
		ex = append(ex, matchPort(svc.Proto, 2, svc.Port)...)
		ex = append(ex,
			&expr.Counter{},
			&expr.Numgen{Register: 1, Type: unix.NFT_NG_INCREMENTAL, Modulus: uint32(len(elems))},
			&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetID: set.ID, SetName: set.Name},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
		)
		c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: ex, UserData: comment(ServiceComment(svc))})
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: post, UserData: comment(MasqueradeComment()),
		Exprs: append(append(matchIPNet(12, PrivNet), matchOifname("eth0")...), &expr.Counter{}, &expr.Masq{})})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("director nftables: %w", err)
	}
	return nil
}

// findRules returns the rules of a chain of the lab table whose comment
// starts with prefix.
func findRules(c *nftables.Conn, chain, prefix string) ([]*nftables.Rule, error) {
	t := labTable()
	rules, err := c.GetRules(t, labChain(t, chain))
	if err != nil {
		return nil, fmt.Errorf("nftables list %s %s: %w", NftTable, chain, err)
	}
	var r []*nftables.Rule
	for _, rl := range rules {
		if s, ok := userdata.GetString(rl.UserData, userdata.TypeComment); ok && strings.HasPrefix(s, prefix) {
			r = append(r, rl)
		}
	}
	return r, nil
}

// RouterDropComment is the comment of the router's rule that keeps the
// public side out of the private LAN.
func RouterDropComment() string {
	return CommentPrefix + "public side has no route to " + PrivNet.String()
}

// applyRouterRules gives the second router its healthy ruleset. As on the
// internet, the public side cannot reach the private LAN: packets from the
// router's public leg to the RIP net are dropped. Without this the client's
// default route (via the router) would carry its answers to the RIPs, and
// the real servers' own traffic would work without the director's
// masquerade (director-no-masquerade would not show). The router still
// forwards from the private LAN to the public one (rs-wrong-gateway).
//
//	table ip lvsdoctor { chain filter_forward { type filter hook forward priority filter; policy accept;
//	  iifname "eth1" ip daddr 198.18.0.0/24 counter drop } }
func (e *env) applyRouterRules() error {
	r := e.st.Host(RoleRouter)
	_, privNet := e.st.privIface()
	pub := ""
	for _, i := range r.Ifaces {
		for _, a := range i.Addrs {
			if ip, _, err := net.ParseCIDR(a); err == nil && !privNet.Contains(ip) {
				pub = i.Name
			}
		}
	}
	c, err := nftConn(e.handle(RoleRouter))
	if err != nil {
		return err
	}
	c.FlushRuleset()
	t := c.AddTable(labTable())
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: NftForward, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	b := make([]byte, 16)
	copy(b, pub)
	ex := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
	}
	ex = append(ex, matchIPNet(16, privNet)...)
	ex = append(ex, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: ex, UserData: comment(RouterDropComment())})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("router nftables: %w", err)
	}
	return nil
}
