package lab

import (
	"fmt"
	"net"
	"strconv"
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

// applyDatapath replaces the director's ruleset with the healthy one of
// the lab's datapath (nft, nft-stateless, or ipvs: ipvs.go).
func (e *env) applyDatapath() error {
	switch e.st.Options.Datapath {
	case DatapathNftStateless:
		return e.applyStateless()
	case DatapathIPVS:
		return e.applyIPVS()
	}
	return e.applyConntrackNAT()
}

// Names of the extra chains and objects in the director's table.
const (
	// NftMangle marks the firewall-mark services' packets and attaches
	// the FTP helper (prerouting, priority mangle, after conntrack).
	NftMangle = "mangle"
	// NftOutput and NftMangleOut do the same for the director's own
	// connections (client-on-director).
	NftOutput    = "output"
	NftMangleOut = "mangle_out"
	// NftStatelessPost rewrites the replies of the stateless datapath.
	NftStatelessPost = "stateless_post"
	// NftFTPHelper is the ct helper object (type "ftp", protocol tcp).
	NftFTPHelper = "ftp"
)

// MarkComment is the comment of the rule that marks a firewall-mark
// service's packets.
func MarkComment(s Service) string {
	return fmt.Sprintf("%smark %s %s as %d", CommentPrefix, s.L4(), net.JoinHostPort(s.VIP, strconv.Itoa(s.Port)), s.Mark)
}

// FTPHelperComment is the comment of the rule that attaches the FTP
// helper to an FTP service's control connections.
func FTPHelperComment(s Service) string { return CommentPrefix + "ftp helper for " + s.String() }

// matchVIPPort matches VIP, the L4 protocol and destination port of the
// service's traffic (what a firewall-mark service's marking rule matches).
func matchVIPPort(s Service) []expr.Any {
	return append(matchIPAddr(16, net.ParseIP(s.VIP)), matchPort(s.L4(), 2, s.Port)...)
}

// matchMark matches meta mark == m.
func matchMark(m uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(m)},
	}
}

// serviceMatch matches a service's requests: its VIP:VPORT, or its mark.
func serviceMatch(s Service) []expr.Any {
	if s.Proto == "fwmark" {
		return matchMark(s.Mark)
	}
	return matchVIPPort(s)
}

// markRule is `ip daddr VIP tcp dport P counter meta mark set M`.
func markRule(t *nftables.Table, ch *nftables.Chain, s Service) *nftables.Rule {
	ex := append(matchVIPPort(s),
		&expr.Counter{},
		&expr.Immediate{Register: 1, Data: binaryutil.NativeEndian.PutUint32(s.Mark)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1})
	return &nftables.Rule{Table: t, Chain: ch, Exprs: ex, UserData: comment(MarkComment(s))}
}

// helperRule is `ip daddr VIP tcp dport 21 counter ct helper set "ftp"`.
func helperRule(t *nftables.Table, ch *nftables.Chain, s Service) *nftables.Rule {
	ex := append(matchVIPPort(s), &expr.Counter{}, &expr.Objref{Type: unix.NFT_OBJECT_CT_HELPER, Name: NftFTPHelper})
	return &nftables.Rule{Table: t, Chain: ch, Exprs: ex, UserData: comment(FTPHelperComment(s))}
}

// rsElems is the map of a service's real servers, each weight times.
func rsElems(svc Service) []nftables.SetElement {
	var elems []nftables.SetElement
	for _, rs := range svc.RealServers {
		for w := 0; w < rs.Weight; w++ {
			elems = append(elems, nftables.SetElement{
				Key: binaryutil.NativeEndian.PutUint32(uint32(len(elems))),
				Val: net.ParseIP(rs.Address).To4(),
			})
		}
	}
	return elems
}

func addRSMap(c *nftables.Conn, t *nftables.Table, svc Service, elems []nftables.SetElement) (*nftables.Set, error) {
	set := &nftables.Set{Table: t, Anonymous: true, Constant: true, IsMap: true,
		KeyType: nftables.TypeInteger, DataType: nftables.TypeIPAddr,
		KeyByteOrder: binaryutil.NativeEndian}
	if err := c.AddSet(set, elems); err != nil {
		return nil, fmt.Errorf("nftables map for %s: %w", svc, err)
	}
	return set, nil
}

func hasFTP(st *State) bool {
	for _, s := range st.Services {
		if s.Kind == KindFTP {
			return true
		}
	}
	return false
}

// applyConntrackNAT is the nft datapath:
//
//	table ip lvsdoctor {
//	  ct helper ftp { type "ftp" protocol tcp; }
//	  chain mangle { type filter hook prerouting priority mangle;
//	    ip daddr VIP tcp dport 8080 counter meta mark set 1
//	    ip daddr VIP tcp dport 21 counter ct helper set "ftp" }
//	  chain prerouting { type nat hook prerouting priority dstnat;
//	    ip daddr VIP tcp dport 80 counter dnat to numgen inc mod N map { 0 : RIP1, ... }
//	    meta mark 1 counter dnat to numgen inc mod N map { ... } }
//	  chain postrouting { type nat hook postrouting priority srcnat;
//	    ip saddr 198.18.0.0/24 oifname "eth0" counter masquerade }
//	  chain filter_forward { type filter hook forward priority filter; policy accept; }
//	}
//
// client-on-director adds the output-hook twins of mangle and prerouting
// (mangle_out, output), so that the director's own connections to the VIP
// are balanced too.
func (e *env) applyConntrackNAT() error {
	ns := e.handle(RoleDirector)
	c, err := nftConn(ns)
	if err != nil {
		return err
	}
	c.FlushRuleset()
	t := c.AddTable(labTable())
	local := e.st.Options.Topology == TopologyClientOnDirector
	accept := nftables.ChainPolicyAccept
	if hasFTP(e.st) {
		c.AddObj(&nftables.NamedObj{Table: t, Name: NftFTPHelper, Type: nftables.ObjTypeCtHelper,
			Obj: &expr.CtHelper{Name: "ftp", L3Proto: unix.NFPROTO_IPV4, L4Proto: unix.IPPROTO_TCP}})
	}
	mangles := []*nftables.Chain{c.AddChain(&nftables.Chain{Name: NftMangle, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityMangle, Policy: &accept})}
	nats := []*nftables.Chain{c.AddChain(&nftables.Chain{Name: NftPrerouting, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})}
	if local {
		mangles = append(mangles, c.AddChain(&nftables.Chain{Name: NftMangleOut, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityMangle, Policy: &accept}))
		nats = append(nats, c.AddChain(&nftables.Chain{Name: NftOutput, Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest}))
	}
	post := c.AddChain(&nftables.Chain{Name: NftPostrouting, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	c.AddChain(&nftables.Chain{Name: NftForward, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})

	for _, svc := range e.st.Services {
		for _, ch := range mangles {
			if svc.Proto == "fwmark" {
				c.AddRule(markRule(t, ch, svc))
			}
			if svc.Kind == KindFTP {
				c.AddRule(helperRule(t, ch, svc))
			}
		}
		// wrr: each real server appears weight times in the map.
		elems := rsElems(svc)
		if len(elems) == 0 {
			continue // every weight 0: no rule, the director's own stack answers
		}
		for _, ch := range nats {
			set, err := addRSMap(c, t, svc, elems)
			if err != nil {
				return err
			}
			ex := append(serviceMatch(svc),
				&expr.Counter{},
				&expr.Numgen{Register: 1, Type: unix.NFT_NG_INCREMENTAL, Modulus: uint32(len(elems))},
				&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetID: set.ID, SetName: set.Name},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
			)
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: ex, UserData: comment(ServiceComment(svc))})
		}
	}
	c.AddRule(e.masqueradeRule(t, post))
	if err := c.Flush(); err != nil {
		return fmt.Errorf("director nftables: %w", err)
	}
	return nil
}

// masqueradeRule is `ip saddr RIPNET oifname PUB counter masquerade` for
// traffic the real servers start (Q.1, Q.2).
//
// In the flat lab the RIP net is on the public interface too: traffic to
// it (the director's own connections to the real servers) is left alone,
// `ip daddr != RIPNET`.
func (e *env) masqueradeRule(t *nftables.Table, post *nftables.Chain) *nftables.Rule {
	ex := matchIPNet(12, PrivNet)
	if e.st.Options.Topology == TopologyFlat {
		ex = append(ex,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte(PrivNet.Mask), Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: PrivNet.IP.To4()})
	}
	ex = append(append(ex, matchOifname(e.st.vipIface().Name)...), &expr.Counter{}, &expr.Masq{})
	return &nftables.Rule{Table: t, Chain: post, UserData: comment(MasqueradeComment()), Exprs: ex}
}

// StatelessReplyComment is the comment of the stateless datapath's rules
// for the replies of one real server of a service.
func StatelessReplyComment(s Service, rs RealServer) string {
	return fmt.Sprintf("%sstateless replies %s for %s", CommentPrefix, net.JoinHostPort(rs.Address, strconv.Itoa(rs.Port)), s)
}

// payloadWrite writes register 1 into the packet, fixing the IP header
// checksum (network header) or the L4 checksum (ports), and, for an
// address, the L4 pseudo-header checksum.
func payloadWrite(base expr.PayloadBase, offset, length uint32, l4 string) *expr.Payload {
	p := &expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: base, Offset: offset, Len: length,
		CsumType: expr.CsumTypeInet}
	if base == expr.PayloadBaseNetworkHeader {
		p.CsumOffset, p.CsumFlags = 10, unix.NFT_PAYLOAD_L4CSUM_PSEUDOHDR
	} else if l4 == "udp" {
		p.CsumOffset = 6
	} else {
		p.CsumOffset = 16
	}
	return p
}

// applyStateless is the nft-stateless datapath: no conntrack for the
// services' packets, so it behaves like IPVS where conntrack NAT differs
// (it lets ICMP redirects through).
//
//	table ip lvsdoctor {
//	  chain prerouting { type filter hook prerouting priority raw;
//	    ip daddr VIP tcp dport 8080 counter meta mark set 1
//	    ip daddr VIP tcp dport 80 counter notrack ip daddr set jhash ip saddr . tcp sport mod N map { 0 : RIP1, ... }
//	    meta mark 1 counter notrack ip daddr set jhash ip saddr . tcp sport mod N map { ... }
//	    ip saddr RIP1 tcp sport 80 notrack ... }
//	  chain stateless_post { type filter hook postrouting priority srcnat;
//	    ip saddr RIP1 tcp sport 80 counter ip saddr set VIP ... }
//	  chain postrouting { type nat hook postrouting priority srcnat; ... masquerade }
//	  chain filter_forward { type filter hook forward priority filter; policy accept; }
//	}
//
// The replies are rewritten after routing (postrouting), as IPVS does in
// FORWARD: the director decides to forward, and to send a redirect, on the
// real server's own packet.
func (e *env) applyStateless() error {
	ns := e.handle(RoleDirector)
	c, err := nftConn(ns)
	if err != nil {
		return err
	}
	c.FlushRuleset()
	t := c.AddTable(labTable())
	accept := nftables.ChainPolicyAccept
	pre := c.AddChain(&nftables.Chain{Name: NftPrerouting, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw, Policy: &accept})
	spost := c.AddChain(&nftables.Chain{Name: NftStatelessPost, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept})
	post := c.AddChain(&nftables.Chain{Name: NftPostrouting, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	c.AddChain(&nftables.Chain{Name: NftForward, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	for _, svc := range e.st.Services {
		if svc.Proto == "fwmark" {
			c.AddRule(markRule(t, pre, svc))
		}
	}
	var replies []*nftables.Rule
	for _, svc := range e.st.Services {
		elems := rsElems(svc)
		if len(elems) == 0 {
			continue
		}
		set, err := addRSMap(c, t, svc, elems)
		if err != nil {
			return err
		}
		l4 := svc.L4()
		ex := append(serviceMatch(svc), &expr.Counter{}, &expr.Notrack{})
		if l4 == "tcp" || l4 == "udp" {
			// jhash ip saddr . th sport: one 32-bit word each, in register 2.
			ex = append(ex,
				&expr.Payload{DestRegister: 2, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
				&expr.Payload{DestRegister: 13, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
				&expr.Hash{SourceRegister: 2, DestRegister: 1, Length: 8, Modulus: uint32(len(elems)), Type: expr.HashTypeJenkins})
		} else {
			ex = append(ex,
				&expr.Payload{DestRegister: 2, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
				&expr.Hash{SourceRegister: 2, DestRegister: 1, Length: 4, Modulus: uint32(len(elems)), Type: expr.HashTypeJenkins})
		}
		ex = append(ex,
			&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetID: set.ID, SetName: set.Name},
			payloadWrite(expr.PayloadBaseNetworkHeader, 16, 4, l4))
		rport := 0
		if len(svc.RealServers) > 0 {
			rport = svc.RealServers[0].Port
		}
		if rport != 0 && rport != svc.Port {
			ex = append(ex,
				&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(uint16(rport))},
				payloadWrite(expr.PayloadBaseTransportHeader, 2, 2, l4))
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: ex, UserData: comment(ServiceComment(svc))})
		for _, rs := range svc.RealServers {
			if rs.Weight == 0 {
				continue
			}
			rip := net.ParseIP(rs.Address)
			match := matchIPAddr(12, rip)
			if l4 == "tcp" || l4 == "udp" {
				match = append(match, matchPort(l4, 0, rs.Port)...)
			}
			cm := comment(StatelessReplyComment(svc, rs))
			replies = append(replies, &nftables.Rule{Table: t, Chain: pre, UserData: cm,
				Exprs: append(append([]expr.Any(nil), match...), &expr.Notrack{})})
			rw := append(append([]expr.Any(nil), match...), &expr.Counter{},
				&expr.Immediate{Register: 1, Data: net.ParseIP(svc.VIP).To4()},
				payloadWrite(expr.PayloadBaseNetworkHeader, 12, 4, l4))
			if (l4 == "tcp" || l4 == "udp") && rs.Port != svc.Port {
				rw = append(rw,
					&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(uint16(svc.Port))},
					payloadWrite(expr.PayloadBaseTransportHeader, 0, 2, l4))
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: spost, Exprs: rw, UserData: cm})
		}
	}
	for _, r := range replies {
		c.AddRule(r)
	}
	c.AddRule(e.masqueradeRule(t, post))
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
