package lab

// ipsec-ah-over-nat (seed notes on IPSec): an IPSec service balanced by
// firewall mark in NAT mode. The director marks ISAKMP (udp/500), ESP
// (protocol 50) and AH (protocol 51) to the VIP with mark 2 and balances
// mark 2 to the real servers with DNAT (masq forwarding). AH authenticates
// the IP header, addresses included: every AH packet the director
// rewrites fails the real server's integrity check. Static: the check
// sees it in the marking rules and the table. Under the ipvs datapath the
// mark is balanced by an IPVS fwmark service with masq real servers.
//
//	chain mangle { ... ip daddr VIP udp dport 500 counter meta mark set 2
//	                   ip daddr VIP meta l4proto esp counter meta mark set 2
//	                   ip daddr VIP meta l4proto ah counter meta mark set 2 }
//	chain prerouting { ... meta mark 2 counter dnat to numgen inc mod N map { ... } }

import (
	"context"
	"fmt"
	"net"

	cfipvs "github.com/cloudflare/ipvs"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// IPSecMark is the firewall mark of the fault's IPSec service.
const IPSecMark = 2

// IPSecComment is the comment of the fault's rules.
const IPSecComment = FaultCommentPrefix + "ipsec-ah-over-nat"

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: "ipsec-ah-over-nat",
			Summary: "an IPSec service (udp/500, ESP, AH) by firewall mark 2 in NAT mode"},
		hostKind: RoleDirector,
		inject:   injectIPSecAH,
	})
}

func injectIPSecAH(ctx context.Context, e *env, h *Host, _ string) error {
	ipvs := e.st.Options.Datapath == DatapathIPVS
	if e.st.Options.Datapath != DatapathNft && !ipvs {
		return fmt.Errorf("%w: ipsec-ah-over-nat needs datapath nft or ipvs (this lab: %s)", ErrBadFault, e.st.Options.Datapath)
	}
	base, ok := e.st.firstService("")
	if !ok {
		return fmt.Errorf("lab state has no service")
	}
	vip := net.ParseIP(base.VIP)
	c, err := nftConn(e.handle(h.Role))
	if err != nil {
		return err
	}
	t := labTable()
	mangle := labChain(t, NftMangle)
	markSet := []expr.Any{
		&expr.Counter{},
		&expr.Immediate{Register: 1, Data: binaryutil.NativeEndian.PutUint32(IPSecMark)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
	}
	proto := func(p byte) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
		}
	}
	for _, m := range [][]expr.Any{
		matchPort("udp", 2, 500),
		proto(unix.IPPROTO_ESP),
		proto(unix.IPPROTO_AH),
	} {
		ex := append(append(matchIPAddr(16, vip), m...), markSet...)
		c.AddRule(&nftables.Rule{Table: t, Chain: mangle, Exprs: ex, UserData: comment(IPSecComment + ": mark as 2")})
	}
	svc := Service{Proto: "fwmark", VIP: base.VIP, Mark: IPSecMark, RealServers: base.RealServers}
	if ipvs {
		// Kernel IPVS balances the mark: the same marking rules, and an
		// IPVS fwmark service with NAT (masq) real servers.
		if err := c.Flush(); err != nil {
			return fmt.Errorf("nftables: %w", err)
		}
		return e.withIPVS(func(ic cfipvs.Client) error { return addIPVSService(ic, svc, cfipvs.Masquerade) })
	}
	elems := rsElems(svc)
	if len(elems) == 0 {
		return fmt.Errorf("no real server with weight > 0")
	}
	set, err := addRSMap(c, t, svc, elems)
	if err != nil {
		return err
	}
	ex := append(matchMark(IPSecMark),
		&expr.Counter{},
		&expr.Numgen{Register: 1, Type: unix.NFT_NG_INCREMENTAL, Modulus: uint32(len(elems))},
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetID: set.ID, SetName: set.Name},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1})
	c.AddRule(&nftables.Rule{Table: t, Chain: labChain(t, NftPrerouting), Exprs: ex, UserData: comment(IPSecComment + ": service fwmark 2")})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if rules, err := findRules(c, NftPrerouting, IPSecComment); err != nil || len(rules) != 1 {
		return fmt.Errorf("IPSec service rule not found after adding it (%v)", err)
	}
	return nil
}
