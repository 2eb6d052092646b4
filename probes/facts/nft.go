package facts

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// setLookup returns the elements of a set by name, for NAT maps.
type setLookup func(t *nftables.Table, name string) ([]nftables.SetElement, error)

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyARP:
		return "arp"
	case nftables.TableFamilyBridge:
		return "bridge"
	case nftables.TableFamilyNetdev:
		return "netdev"
	}
	return strconv.Itoa(int(f))
}

func hookName(fam nftables.TableFamily, h nftables.ChainHook) string {
	if fam == nftables.TableFamilyNetdev {
		switch h {
		case unix.NF_NETDEV_INGRESS:
			return "ingress"
		case unix.NF_NETDEV_EGRESS:
			return "egress"
		}
	}
	switch h {
	case unix.NF_INET_PRE_ROUTING:
		return "prerouting"
	case unix.NF_INET_LOCAL_IN:
		return "input"
	case unix.NF_INET_FORWARD:
		return "forward"
	case unix.NF_INET_LOCAL_OUT:
		return "output"
	case unix.NF_INET_POST_ROUTING:
		return "postrouting"
	case 5: // NF_INET_INGRESS (inet family)
		return "ingress"
	}
	return strconv.Itoa(int(h))
}

func chainOf(c *nftables.Chain) obs.NftChain {
	oc := obs.NftChain{Family: familyName(c.Table.Family), Table: c.Table.Name, Name: c.Name, Type: string(c.Type)}
	if c.Hooknum != nil {
		oc.Hook = hookName(c.Table.Family, *c.Hooknum)
	}
	if c.Priority != nil {
		oc.Priority = int(*c.Priority)
	}
	if c.Policy != nil && c.Hooknum != nil {
		switch *c.Policy {
		case nftables.ChainPolicyAccept:
			oc.Policy = "accept"
		case nftables.ChainPolicyDrop:
			oc.Policy = "drop"
		}
	}
	return oc
}

// regState is what a register holds while decoding a rule.
type regState struct {
	what string // "ip saddr", "ip daddr", "th sport", "th dport", "l4proto", "nfproto", "iifname", "oifname", "ct state", "mark", ...
	mask []byte // from a bitwise on it
	imm  []byte // from an immediate
	set  string // map lookup result: the set's name
}

var ctStateBits = []struct {
	bit  uint32
	name string
}{{1, "invalid"}, {2, "established"}, {4, "related"}, {8, "new"}, {64, "untracked"}}

func ctStateNames(mask uint32) string {
	var out []string
	for _, b := range ctStateBits {
		if mask&b.bit != 0 {
			out = append(out, b.name)
		}
	}
	return strings.Join(out, ",")
}

func protoName(p byte) string {
	switch p {
	case unix.IPPROTO_TCP:
		return "tcp"
	case unix.IPPROTO_UDP:
		return "udp"
	case unix.IPPROTO_ICMP:
		return "icmp"
	case unix.IPPROTO_SCTP:
		return "sctp"
	case unix.IPPROTO_ICMPV6:
		return "icmpv6"
	case unix.IPPROTO_ESP:
		return "esp"
	case unix.IPPROTO_AH:
		return "ah"
	}
	return strconv.Itoa(int(p))
}

func prefixOf(ip, mask []byte) string {
	if len(ip) != 4 {
		return fmt.Sprintf("%x", ip)
	}
	a := net.IP(ip).String()
	if len(mask) == 4 {
		ones := 0
		for _, b := range mask {
			ones += bits.OnesCount8(b)
		}
		return fmt.Sprintf("%s/%d", a, ones)
	}
	return a
}

// decodeRule turns one rule into an obs.NftRule. lookup may be nil.
func decodeRule(r *nftables.Rule, lookup setLookup) obs.NftRule {
	or := obs.NftRule{Family: familyName(r.Table.Family), Table: r.Table.Name, Chain: r.Chain.Name, Handle: r.Handle}
	if c, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok {
		or.Comment = c
	}
	regs := map[uint32]*regState{}
	reg := func(n uint32) *regState {
		if regs[n] == nil {
			regs[n] = &regState{}
		}
		return regs[n]
	}
	var text []string
	l4 := "th"
	for _, e := range r.Exprs {
		switch v := e.(type) {
		case *expr.Payload:
			if v.OperationType != expr.PayloadLoad {
				text = append(text, decodeWrite(r.Table, &or, v, reg(v.SourceRegister), l4, lookup))
				continue
			}
			w := fmt.Sprintf("@%d,%d,%d", v.Base, v.Offset*8, v.Len*8)
			switch {
			case v.Base == expr.PayloadBaseNetworkHeader && v.Offset == 12 && v.Len == 4:
				w = "ip saddr"
			case v.Base == expr.PayloadBaseNetworkHeader && v.Offset == 16 && v.Len == 4:
				w = "ip daddr"
			case v.Base == expr.PayloadBaseNetworkHeader && v.Offset == 9 && v.Len == 1:
				w = "ip protocol"
			case v.Base == expr.PayloadBaseTransportHeader && v.Offset == 0 && v.Len == 2:
				w = "sport"
			case v.Base == expr.PayloadBaseTransportHeader && v.Offset == 2 && v.Len == 2:
				w = "dport"
			}
			regs[v.DestRegister] = &regState{what: w}
		case *expr.Meta:
			name := metaName(v.Key)
			if v.SourceRegister {
				rs := reg(v.Register)
				if v.Key == expr.MetaKeyMARK && len(rs.imm) == 4 {
					m := binaryutil.NativeEndian.Uint32(rs.imm)
					or.Mark = &m
					text = append(text, fmt.Sprintf("meta mark set 0x%x", m))
				} else {
					text = append(text, "meta "+name+" set")
				}
				continue
			}
			regs[v.Register] = &regState{what: name}
		case *expr.Ct:
			if v.SourceRegister {
				text = append(text, "ct set")
				continue
			}
			w := "ct " + strconv.Itoa(int(v.Key))
			if v.Key == expr.CtKeySTATE {
				w = "ct state"
			}
			regs[v.Register] = &regState{what: w}
		case *expr.Bitwise:
			src := reg(v.SourceRegister)
			regs[v.DestRegister] = &regState{what: src.what, mask: v.Mask}
		case *expr.Immediate:
			regs[v.Register] = &regState{imm: v.Data}
		case *expr.Cmp:
			rs := reg(v.Register)
			op := ""
			if v.Op != expr.CmpOpEq {
				op = cmpOp(v.Op) + " "
			}
			eq := v.Op == expr.CmpOpEq
			switch rs.what {
			case "ip saddr", "ip daddr":
				p := prefixOf(v.Data, rs.mask)
				if eq {
					if rs.what == "ip saddr" {
						or.SAddr = p
					} else {
						or.DAddr = p
					}
				}
				text = append(text, rs.what+" "+op+p)
			case "l4proto", "ip protocol":
				if len(v.Data) == 1 {
					p := protoName(v.Data[0])
					if eq {
						or.Proto, l4 = p, p
					}
					text = append(text, "meta l4proto "+op+p)
				}
			case "nfproto":
				if len(v.Data) == 1 {
					n := map[byte]string{unix.NFPROTO_IPV4: "ipv4", unix.NFPROTO_IPV6: "ipv6"}[v.Data[0]]
					text = append(text, "meta nfproto "+op+n)
				}
			case "sport", "dport":
				if len(v.Data) == 2 {
					port := int(binary.BigEndian.Uint16(v.Data))
					if eq {
						if rs.what == "sport" {
							or.SPort = port
						} else {
							or.DPort = port
						}
					}
					text = append(text, fmt.Sprintf("%s %s %s%d", l4, rs.what, op, port))
				}
			case "iifname", "oifname":
				n := string(bytes.TrimRight(v.Data, "\x00"))
				if eq {
					if rs.what == "iifname" {
						or.IIfName = n
					} else {
						or.OIfName = n
					}
				}
				text = append(text, fmt.Sprintf("%s %s%q", rs.what, op, n))
			case "mark":
				if len(v.Data) == 4 && len(rs.mask) == 0 {
					m := binaryutil.NativeEndian.Uint32(v.Data)
					if eq {
						or.MarkMatch = &m
					}
					text = append(text, fmt.Sprintf("meta mark %s0x%x", op, m))
				} else {
					or.Opaque = true
					text = append(text, fmt.Sprintf("meta mark %s0x%x", op, v.Data))
				}
			case "ct state":
				if len(rs.mask) == 4 && v.Op == expr.CmpOpNeq && isZero(v.Data) {
					s := ctStateNames(binaryutil.NativeEndian.Uint32(rs.mask))
					or.CtState = s
					text = append(text, "ct state "+s)
				} else if len(v.Data) == 4 {
					s := ctStateNames(binaryutil.NativeEndian.Uint32(v.Data))
					if eq {
						or.CtState = s
					}
					text = append(text, "ct state "+op+s)
				}
			default:
				or.Opaque = true
				text = append(text, fmt.Sprintf("%s %s0x%x", orUnknown(rs.what), op, v.Data))
			}
		case *expr.Lookup:
			src := reg(v.SourceRegister)
			neg := ""
			if v.Invert {
				neg = "!= "
			}
			if v.IsDestRegSet {
				regs[v.DestRegister] = &regState{what: "map", set: v.SetName}
				text = append(text, fmt.Sprintf("%s map @%s", orUnknown(src.what), v.SetName))
			} else {
				text = append(text, fmt.Sprintf("%s %s@%s", orUnknown(src.what), neg, v.SetName))
			}
		case *expr.Numgen:
			regs[v.Register] = &regState{what: fmt.Sprintf("numgen inc mod %d", v.Modulus)}
		case *expr.Hash:
			regs[v.DestRegister] = &regState{what: fmt.Sprintf("jhash mod %d", v.Modulus)}
		case *expr.Counter:
			p, b := v.Packets, v.Bytes
			or.Packets, or.Bytes = &p, &b
			text = append(text, fmt.Sprintf("counter packets %d bytes %d", p, b))
		case *expr.Verdict:
			k := verdictName(v.Kind)
			or.Verdict = k
			if v.Chain != "" {
				k += " " + v.Chain
			}
			text = append(text, k)
		case *expr.Reject:
			or.Verdict = "reject"
			text = append(text, "reject")
		case *expr.Masq:
			or.NAT = "masquerade"
			text = append(text, "masquerade")
		case *expr.Redir:
			or.NAT = "redirect"
			text = append(text, "redirect")
		case *expr.NAT:
			or.NAT = "dnat"
			if v.Type == expr.NATTypeSourceNAT {
				or.NAT = "snat"
			}
			or.NATTo = natTargets(r.Table, regs, v, lookup)
			text = append(text, or.NAT+" to "+strings.Join(or.NATTo, ","))
		case *expr.Match:
			or.Opaque = true
			text = append(text, "xt match "+v.Name)
		case *expr.Target:
			or.Opaque = true
			text = append(text, "xt target "+v.Name)
		case *expr.Notrack:
			text = append(text, "notrack")
		case *expr.Objref:
			if v.Type == unix.NFT_OBJECT_CT_HELPER {
				or.Helper = v.Name
				text = append(text, fmt.Sprintf("ct helper set %q", v.Name))
			} else {
				text = append(text, fmt.Sprintf("objref type %d %q", v.Type, v.Name))
			}
		case *expr.Log:
			text = append(text, "log")
		case *expr.Limit:
			text = append(text, "limit")
		default:
			text = append(text, fmt.Sprintf("%T", e)[len("*expr."):])
		}
	}
	if or.Comment != "" {
		text = append(text, fmt.Sprintf("comment %q", or.Comment))
	}
	or.Text = strings.Join(text, " ")
	return or
}

// decodeWrite renders a payload write (`ip daddr set ...`). Writing the
// destination address from a map or a constant is a DNAT done in place,
// without conntrack (a stateless datapath): NAT "dnat" with Stateless set,
// so the table reads the same as conntrack NAT.
func decodeWrite(t *nftables.Table, or *obs.NftRule, v *expr.Payload, src *regState, l4 string, lookup setLookup) string {
	what := fmt.Sprintf("@%d,%d,%d", v.Base, v.Offset*8, v.Len*8)
	switch {
	case v.Base == expr.PayloadBaseNetworkHeader && v.Offset == 12 && v.Len == 4:
		what = "ip saddr"
	case v.Base == expr.PayloadBaseNetworkHeader && v.Offset == 16 && v.Len == 4:
		what = "ip daddr"
	case v.Base == expr.PayloadBaseTransportHeader && v.Offset == 0 && v.Len == 2:
		what = l4 + " sport"
	case v.Base == expr.PayloadBaseTransportHeader && v.Offset == 2 && v.Len == 2:
		what = l4 + " dport"
	}
	val := "?"
	var targets []string
	switch {
	case src.set != "":
		if lookup != nil {
			if els, err := lookup(t, src.set); err == nil {
				sort.Slice(els, func(i, j int) bool { return bytes.Compare(revKey(els[i].Key), revKey(els[j].Key)) < 0 })
				for _, e := range els {
					if !e.IntervalEnd && len(e.Val) >= 4 {
						targets = append(targets, net.IP(e.Val[:4]).String())
					}
				}
			}
		}
		val = "map @" + src.set
		if len(targets) > 0 {
			val = "map { " + strings.Join(targets, ", ") + " }"
		}
	case len(src.imm) == 4 && v.Base == expr.PayloadBaseNetworkHeader:
		val = net.IP(src.imm).String()
		targets = []string{val}
	case len(src.imm) >= 2:
		val = strconv.Itoa(int(binary.BigEndian.Uint16(src.imm)))
	}
	if what == "ip daddr" && len(targets) > 0 {
		or.NAT, or.NATTo, or.Stateless = "dnat", targets, true
	}
	return what + " set " + val
}

func natTargets(t *nftables.Table, regs map[uint32]*regState, n *expr.NAT, lookup setLookup) []string {
	rs := regs[n.RegAddrMin]
	if rs == nil {
		return nil
	}
	port := ""
	if n.RegProtoMin != 0 {
		if p := regs[n.RegProtoMin]; p != nil && len(p.imm) >= 2 {
			port = strconv.Itoa(int(binary.BigEndian.Uint16(p.imm)))
		}
	}
	withPort := func(ip []byte) string {
		a := net.IP(ip[:4]).String()
		if port != "" {
			return net.JoinHostPort(a, port)
		}
		return a
	}
	if len(rs.imm) >= 4 {
		return []string{withPort(rs.imm)}
	}
	if rs.set == "" || lookup == nil {
		return nil
	}
	els, err := lookup(t, rs.set)
	if err != nil {
		return []string{"?map " + rs.set + ": " + err.Error()}
	}
	sort.Slice(els, func(i, j int) bool { return bytes.Compare(revKey(els[i].Key), revKey(els[j].Key)) < 0 })
	var out []string
	for _, e := range els {
		if e.IntervalEnd || len(e.Val) < 4 {
			continue
		}
		out = append(out, withPort(e.Val))
	}
	return out
}

// revKey orders native-endian integer keys numerically.
func revKey(k []byte) []byte {
	if binaryutil.NativeEndian.Uint16([]byte{1, 0}) == 1 { // little endian host
		r := make([]byte, len(k))
		for i := range k {
			r[i] = k[len(k)-1-i]
		}
		return r
	}
	return k
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func cmpOp(op expr.CmpOp) string {
	switch op {
	case expr.CmpOpEq:
		return "=="
	case expr.CmpOpNeq:
		return "!="
	case expr.CmpOpLt:
		return "<"
	case expr.CmpOpLte:
		return "<="
	case expr.CmpOpGt:
		return ">"
	case expr.CmpOpGte:
		return ">="
	}
	return "?"
}

func metaName(k expr.MetaKey) string {
	switch k {
	case expr.MetaKeyL4PROTO:
		return "l4proto"
	case expr.MetaKeyNFPROTO:
		return "nfproto"
	case expr.MetaKeyIIFNAME:
		return "iifname"
	case expr.MetaKeyOIFNAME:
		return "oifname"
	case expr.MetaKeyMARK:
		return "mark"
	case expr.MetaKeyIIF:
		return "iif"
	case expr.MetaKeyOIF:
		return "oif"
	}
	return "meta" + strconv.Itoa(int(k))
}

func verdictName(k expr.VerdictKind) string {
	switch k {
	case expr.VerdictAccept:
		return "accept"
	case expr.VerdictDrop:
		return "drop"
	case expr.VerdictJump:
		return "jump"
	case expr.VerdictGoto:
		return "goto"
	case expr.VerdictReturn:
		return "return"
	case expr.VerdictContinue:
		return "continue"
	case expr.VerdictBreak:
		return "break"
	}
	return strconv.Itoa(int(k))
}

// readNft lists chains and rules of every table.
func readNft(c *nftables.Conn) ([]obs.NftChain, []obs.NftRule, error) {
	chains, err := c.ListChains()
	if err != nil {
		return nil, nil, err
	}
	sort.SliceStable(chains, func(i, j int) bool {
		a, b := chains[i], chains[j]
		if a.Table.Family != b.Table.Family {
			return a.Table.Family < b.Table.Family
		}
		if a.Table.Name != b.Table.Name {
			return a.Table.Name < b.Table.Name
		}
		return a.Name < b.Name
	})
	sets := map[string]*nftables.Set{}
	lookup := func(t *nftables.Table, name string) ([]nftables.SetElement, error) {
		key := familyName(t.Family) + "/" + t.Name + "/" + name
		s := sets[key]
		if s == nil {
			var err error
			if s, err = c.GetSetByName(t, name); err != nil {
				return nil, err
			}
			sets[key] = s
		}
		return c.GetSetElements(s)
	}
	outC := []obs.NftChain{}
	outR := []obs.NftRule{}
	var errs []string
	for _, ch := range chains {
		outC = append(outC, chainOf(ch))
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			errs = append(errs, fmt.Sprintf("rules of %s %s %s: %v", familyName(ch.Table.Family), ch.Table.Name, ch.Name, err))
			continue
		}
		for _, r := range rules {
			outR = append(outR, decodeRule(r, lookup))
		}
	}
	if len(errs) > 0 {
		return outC, outR, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return outC, outR, nil
}
