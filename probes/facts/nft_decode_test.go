package facts

import (
	"net"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

func testRule(ex ...expr.Any) *nftables.Rule {
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: "t"}
	return &nftables.Rule{Table: t, Chain: &nftables.Chain{Name: "c", Table: t}, Exprs: ex}
}

func TestDecodeMarkHelperAH(t *testing.T) {
	// meta mark 1 ... dnat; ct helper set "ftp"; meta l4proto ah meta mark set 2
	mark := decodeRule(testRule(
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(1)},
		&expr.Immediate{Register: 1, Data: net.ParseIP("198.18.0.2").To4()},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
	), nil)
	if mark.MarkMatch == nil || *mark.MarkMatch != 1 || mark.Opaque || mark.NAT != "dnat" {
		t.Errorf("mark match: %+v", mark)
	}
	helper := decodeRule(testRule(&expr.Objref{Type: unix.NFT_OBJECT_CT_HELPER, Name: "ftp"}), nil)
	if helper.Helper != "ftp" || helper.Text != `ct helper set "ftp"` {
		t.Errorf("helper: %+v", helper)
	}
	ah := decodeRule(testRule(
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_AH}},
		&expr.Immediate{Register: 1, Data: binaryutil.NativeEndian.PutUint32(2)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
	), nil)
	if ah.Proto != "ah" || ah.Mark == nil || *ah.Mark != 2 {
		t.Errorf("ah: %+v", ah)
	}
}

func TestDecodeStatelessDNAT(t *testing.T) {
	elems := []nftables.SetElement{
		{Key: binaryutil.NativeEndian.PutUint32(1), Val: net.ParseIP("198.18.0.3").To4()},
		{Key: binaryutil.NativeEndian.PutUint32(0), Val: net.ParseIP("198.18.0.2").To4()},
	}
	lookup := func(*nftables.Table, string) ([]nftables.SetElement, error) { return elems, nil }
	r := decodeRule(testRule(
		&expr.Notrack{},
		&expr.Payload{DestRegister: 2, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Payload{DestRegister: 13, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
		&expr.Hash{SourceRegister: 2, DestRegister: 1, Length: 8, Modulus: 2},
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: "__map0"},
		&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
	), lookup)
	if r.NAT != "dnat" || !r.Stateless || len(r.NATTo) != 2 || r.NATTo[0] != "198.18.0.2" {
		t.Errorf("stateless dnat: %+v", r)
	}
	reply := decodeRule(testRule(
		&expr.Immediate{Register: 1, Data: net.ParseIP("203.0.113.100").To4()},
		&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
	), nil)
	if reply.NAT != "" || reply.Text != "ip saddr set 203.0.113.100" {
		t.Errorf("reply rewrite: %+v", reply)
	}
}

func TestDatapathStateless(t *testing.T) {
	sl := obs.Facts{NftRules: []obs.NftRule{{NAT: "dnat", Stateless: true}}}
	both := obs.Facts{NftRules: []obs.NftRule{{NAT: "dnat", Stateless: true}, {NAT: "dnat"}}}
	if Datapath(sl) != "nft-stateless" || Datapath(both) != "nft" || Datapath(obs.Facts{}) != "" {
		t.Errorf("datapaths %q %q", Datapath(sl), Datapath(both))
	}
}
