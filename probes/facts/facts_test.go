package facts

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/lvsdoctor/lvsdoctor/probes/internal/nstest"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
)

// addRules puts, in ns, a filter rule with counter and comment
// ("ip saddr 198.18.0.0/24 tcp dport 8080 counter accept") and a nat
// rule with a numgen map DNAT.
func addRules(t testing.TB, ns *nstest.NS) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Handle)))
	if err != nil {
		t.Fatal(err)
	}
	tbl := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "lvspt"})
	accept := nftables.ChainPolicyAccept
	in := c.AddChain(&nftables.Chain{Name: "input", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	c.AddRule(&nftables.Rule{Table: tbl, Chain: in, UserData: userdata.AppendString(nil, userdata.TypeComment, "lvspt-test"),
		Exprs: []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 255, 255, 0}, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{198, 18, 0, 0}},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(8080)},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictAccept},
		}})
	c.AddRule(&nftables.Rule{Table: tbl, Chain: in, Exprs: []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(2 | 4), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte("eth0\x00")},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}})
	pre := c.AddChain(&nftables.Chain{Name: "pre", Table: tbl, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
	m := &nftables.Set{Table: tbl, Anonymous: true, Constant: true, IsMap: true,
		KeyType: nftables.TypeInteger, DataType: nftables.TypeIPAddr, KeyByteOrder: binaryutil.NativeEndian}
	if err := c.AddSet(m, []nftables.SetElement{
		{Key: binaryutil.NativeEndian.PutUint32(0), Val: []byte{198, 18, 0, 2}},
		{Key: binaryutil.NativeEndian.PutUint32(1), Val: []byte{198, 18, 0, 3}},
	}); err != nil {
		t.Fatal(err)
	}
	c.AddRule(&nftables.Rule{Table: tbl, Chain: pre, Exprs: []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{203, 0, 113, 100}},
		&expr.Numgen{Register: 1, Modulus: 2, Type: unix.NFT_NG_INCREMENTAL},
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: m.Name, SetID: m.ID},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
	}})
	if err := c.Flush(); err != nil {
		t.Fatalf("nft: %v", err)
	}
}

func TestCollect(t *testing.T) {
	testenv.RequireRoot(t)
	p := nstest.NewPair(t)
	addRules(t, p.A)
	p.A.Sysctl(t, "net.ipv4.conf.eth0.rp_filter", "2")
	var ln net.Listener
	var f obs.Facts
	p.A.MustDo(t, func() error {
		var err error
		if ln, err = net.Listen("tcp4", p.AAddr+":8080"); err != nil {
			return err
		}
		// traffic so that counters and the rule counter move
		if c, err := net.Dial("tcp4", p.AAddr+":8080"); err == nil {
			c.Close()
		}
		if u, err := net.Dial("udp4", p.BAddr+":9"); err == nil {
			_, _ = u.Write([]byte("x"))
			u.Close()
		}
		f = Collect(context.Background())
		return nil
	})
	defer ln.Close()
	t.Logf("errors: %v", f.Errors)
	for _, r := range f.NftRules {
		t.Logf("rule %s", r.Text)
	}
	for _, e := range f.Errors {
		if !strings.HasPrefix(e, "conntrack") { // conntrack may be absent
			t.Errorf("error: %s", e)
		}
	}
	var eth0 *obs.Link
	for i := range f.Links {
		if f.Links[i].Name == "eth0" {
			eth0 = &f.Links[i]
		}
	}
	if eth0 == nil || eth0.Kind != "veth" || !eth0.Up || !eth0.Carrier || eth0.MTU != 1500 || eth0.MAC == "" || eth0.TxPackets == 0 {
		t.Errorf("eth0: %+v", eth0)
	}
	if len(f.Links) != 2 {
		t.Errorf("links %+v", f.Links)
	}
	found := false
	for _, a := range f.Addrs {
		found = found || (a.Link == "eth0" && a.Prefix == "198.18.0.1/24")
	}
	if !found {
		t.Errorf("addrs %+v", f.Addrs)
	}
	found = false
	for _, r := range f.Routes {
		found = found || (r.Dst == "198.18.0.0/24" && r.Dev == "eth0" && r.Type == "unicast" && r.Table == 254 && r.Protocol == "kernel")
	}
	if !found {
		t.Errorf("routes %+v", f.Routes)
	}
	localTable := false
	for _, r := range f.Routes {
		localTable = localTable || (r.Table == 255 && r.Type == "local")
	}
	if !localTable {
		t.Error("no local table routes")
	}
	for _, k := range []string{"net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.send_redirects", "net.ipv4.conf.eth0.arp_ignore"} {
		if _, ok := f.Sysctls[k]; !ok {
			t.Errorf("sysctl %s missing", k)
		}
	}
	if f.Sysctls["net.ipv4.conf.eth0.rp_filter"] != "2" {
		t.Errorf("rp_filter eth0 = %q", f.Sysctls["net.ipv4.conf.eth0.rp_filter"])
	}
	for _, k := range []string{"TcpExt.IPReversePathFilter", "Ip.ForwDatagrams", "Icmp.OutRedirects"} {
		if _, ok := f.Counters[k]; !ok {
			t.Errorf("counter %s missing", k)
		}
	}
	if f.Counters["Tcp.ActiveOpens"] < 1 {
		t.Errorf("Tcp.ActiveOpens = %d", f.Counters["Tcp.ActiveOpens"])
	}
	var rule, ct, dnat *obs.NftRule
	for i, r := range f.NftRules {
		switch {
		case r.Comment == "lvspt-test":
			rule = &f.NftRules[i]
		case r.CtState != "":
			ct = &f.NftRules[i]
		case r.NAT != "":
			dnat = &f.NftRules[i]
		}
	}
	if rule == nil || rule.SAddr != "198.18.0.0/24" || rule.Proto != "tcp" || rule.DPort != 8080 || rule.Verdict != "accept" ||
		rule.Packets == nil || *rule.Packets < 1 || rule.Table != "lvspt" || rule.Chain != "input" || rule.Family != "ip" {
		t.Errorf("counter rule: %+v", rule)
	}
	if ct == nil || ct.CtState != "established,related" || ct.IIfName != "eth0" || ct.Packets != nil {
		t.Errorf("ct rule: %+v", ct)
	}
	if dnat == nil || dnat.NAT != "dnat" || dnat.DAddr != "203.0.113.100" || strings.Join(dnat.NATTo, ",") != "198.18.0.2,198.18.0.3" {
		t.Errorf("dnat rule: %+v", dnat)
	}
	chains := map[string]obs.NftChain{}
	for _, c := range f.NftChains {
		chains[c.Name] = c
	}
	if c := chains["input"]; c.Hook != "input" || c.Policy != "accept" || c.Type != "filter" {
		t.Errorf("input chain %+v", c)
	}
	if c := chains["pre"]; c.Hook != "prerouting" || c.Priority != -100 || c.Type != "nat" {
		t.Errorf("pre chain %+v", c)
	}
	if f.Datapath != "nft" {
		t.Errorf("datapath %q", f.Datapath)
	}
	found = false
	for _, l := range f.Listeners {
		found = found || (l.Proto == "tcp" && l.Addr == p.AAddr+":8080")
	}
	if !found {
		t.Errorf("listeners %+v", f.Listeners)
	}
	if f.Neigh == nil {
		t.Error("neigh nil")
	}
}

func BenchmarkFacts(b *testing.B) {
	testenv.RequireRoot(b)
	ns := nstest.New(b)
	addRules(b, ns)
	b.ResetTimer()
	ns.MustDo(b, func() error {
		for i := 0; i < b.N; i++ {
			_ = Collect(context.Background())
		}
		return nil
	})
}

func BenchmarkFactsCheck(b *testing.B) {
	testenv.RequireRoot(b)
	ns := nstest.New(b)
	addRules(b, ns)
	for name, a := range map[string]obs.FactsArgs{
		"before": {SkipConntrack: true},
		"after":  {SkipConntrack: true, SkipListeners: true, SkipStatic: true},
	} {
		b.Run(name, func(b *testing.B) {
			ns.MustDo(b, func() error {
				for b.Loop() {
					_ = CollectWith(context.Background(), a)
				}
				return nil
			})
		})
	}
}

// Counters sent as read come out of Decode as the map the agent would
// have sent: the same keys, and a bad text is an error, not a silent gap.
func TestRawCounters(t *testing.T) {
	testenv.RequireRoot(t)
	ns := nstest.New(t)
	var plain, raw obs.Facts
	ns.MustDo(t, func() error {
		plain = CollectWith(context.Background(), obs.FactsArgs{SkipConntrack: true, SkipListeners: true, SkipStatic: true})
		raw = CollectWith(context.Background(), obs.FactsArgs{SkipConntrack: true, SkipListeners: true, SkipStatic: true, RawCounters: true})
		return nil
	})
	if raw.Counters != nil || raw.CountersRaw == "" {
		t.Fatalf("raw: counters %d, raw %d bytes", len(raw.Counters), len(raw.CountersRaw))
	}
	if err := Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if raw.CountersRaw != "" || len(raw.Counters) < 100 || len(raw.Counters) != len(plain.Counters) {
		t.Fatalf("decoded %d counters, the map had %d", len(raw.Counters), len(plain.Counters))
	}
	for k := range plain.Counters {
		if _, ok := raw.Counters[k]; !ok {
			t.Errorf("%s missing after Decode", k)
		}
	}
	bad := obs.Facts{CountersRaw: "Ip: Forwarding DefaultTTL\nIp: 1\n"}
	if err := Decode(&bad); err == nil {
		t.Error("a line with fewer values than names decoded without an error")
	}
}
