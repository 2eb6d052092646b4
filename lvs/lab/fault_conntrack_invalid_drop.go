package lab

// conntrack-invalid-drop (HOWTO Q.3 A.2): a stateful rule on the director
// drops what conntrack marks INVALID, and the replies of the TCP service
// take a path conntrack did not see the start of. The requests are
// balanced without conntrack (as IPVS with net.ipv4.vs.conntrack=0, or the
// stateless nftables datapath, does): a raw-priority prerouting chain marks
// them notrack and rewrites their destination to a RIP itself,
//
//	chain raw_prerouting { type filter hook prerouting priority raw;
//	  ip daddr VIP tcp dport 80 notrack ip daddr set jhash tcp sport mod N map { ... } }
//
// so the real server's SYN+ACK is the first packet conntrack sees of the
// connection: INVALID, and dropped by
//
//	chain filter_forward { ... ct state invalid counter drop }

import (
	"context"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Comments of the fault's rules.
const (
	InvalidDropComment    = FaultCommentPrefix + "conntrack-invalid-drop"
	StatelessRequestsNote = FaultCommentPrefix + "conntrack-invalid-drop: requests balanced without conntrack"
	RawPrerouting         = "raw_prerouting"
)

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: "conntrack-invalid-drop",
			Summary: "ct state invalid drop in forward; the TCP service's requests bypass conntrack (as IPVS with vs.conntrack=0)"},
		hostKind: RoleDirector,
		inject:   injectConntrackInvalidDrop,
	})
}

func injectConntrackInvalidDrop(ctx context.Context, e *env, h *Host, _ string) error {
	svc, ok := e.st.firstService("tcp")
	if !ok {
		return fmt.Errorf("lab state has no TCP service")
	}
	c, err := nftConn(e.handle(h.Role))
	if err != nil {
		return err
	}
	t := labTable()
	raw := addBaseChain(c, t, RawPrerouting, nftables.ChainTypeFilter, nftables.ChainHookPrerouting, nftables.ChainPriorityRaw, nftables.ChainPolicyAccept)
	pick, ok, err := serviceMap(c, t, svc, "")
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s has no real server with weight > 0", svc)
	}
	// Stateless: the real server is chosen by a hash of the client's
	// port, so that a connection's retransmits go where its SYN went.
	ng, _ := pick[0].(*expr.Numgen)
	pick = append([]expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
		&expr.Hash{SourceRegister: 1, DestRegister: 1, Length: 2, Modulus: ng.Modulus, Type: expr.HashTypeJenkins},
	}, pick[1:]...)
	ex := matchService(svc)
	ex = append(ex, &expr.Counter{}, &expr.Notrack{})
	ex = append(ex, pick...)
	ex = append(ex, &expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1,
		Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4,
		CsumType: expr.CsumTypeInet, CsumOffset: 10, CsumFlags: unix.NFT_PAYLOAD_L4CSUM_PSEUDOHDR})
	c.AddRule(&nftables.Rule{Table: t, Chain: raw, Exprs: ex, UserData: comment(StatelessRequestsNote)})
	c.InsertRule(&nftables.Rule{Table: t, Chain: labChain(t, NftForward), UserData: comment(InvalidDropComment), Exprs: []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(1), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
		&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	for chain, cm := range map[string]string{RawPrerouting: StatelessRequestsNote, NftForward: InvalidDropComment} {
		if rs, err := findRules(c, chain, cm); err != nil || len(rs) == 0 {
			return fmt.Errorf("rule %q not found after adding it (%v)", cm, err)
		}
	}
	return nil
}
