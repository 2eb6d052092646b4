package classify

import (
	"bufio"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// chainHook finds the hook of an nft chain ("" when not a base chain).
func chainHook(f *obs.Facts, r obs.NftRule) (hook, typ string) {
	for _, c := range f.NftChains {
		if c.Family == r.Family && c.Table == r.Table && c.Name == r.Chain {
			return c.Hook, c.Type
		}
	}
	return "", ""
}

// prefixCovers says a rule's address match (prefix, address or empty for
// "any") covers a.
func prefixCovers(match string, a netip.Addr) bool {
	if match == "" {
		return true
	}
	if p, err := netip.ParsePrefix(match); err == nil {
		return p.Masked().Contains(a)
	}
	if m, err := netip.ParseAddr(match); err == nil {
		return m == a
	}
	return false
}

// masqueradeFor finds a rule that source-NATs packets from a: nft masquerade
// or snat in a postrouting chain, or iptables MASQUERADE/SNAT in the nat
// table. It returns how the rule reads, or "" when none covers a.
func masqueradeFor(f *obs.Facts, a netip.Addr) string {
	for _, r := range f.NftRules {
		if r.NAT != "masquerade" && r.NAT != "snat" {
			continue
		}
		if hook, _ := chainHook(f, r); hook != "" && hook != "postrouting" {
			continue
		}
		if prefixCovers(r.SAddr, a) {
			return fmt.Sprintf("nft %s %s %s handle %d: %s", r.Family, r.Table, r.Chain, r.Handle, r.Text)
		}
	}
	for _, ln := range iptablesRules(f.IptablesSave, "nat") {
		if !strings.Contains(ln.rule, "-j MASQUERADE") && !strings.Contains(ln.rule, "-j SNAT") {
			continue
		}
		if prefixCovers(flagValue(ln.rule, "-s"), a) {
			return "iptables -t nat " + ln.rule
		}
	}
	return ""
}

type iptLine struct {
	table   string
	rule    string // "-A CHAIN ..."
	packets int64  // -1 without counters
}

// iptablesRules reads the rules of one table from `iptables-save -c`
// output (both the nft and the legacy variant may be concatenated).
func iptablesRules(save, table string) []iptLine {
	var out []iptLine
	cur := ""
	sc := bufio.NewScanner(strings.NewReader(save))
	for sc.Scan() {
		ln := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(ln, "*"):
			cur = ln[1:]
		case cur == table && strings.HasPrefix(ln, "["):
			end := strings.Index(ln, "]")
			if end < 0 {
				continue
			}
			pk, _, _ := strings.Cut(ln[1:end], ":")
			n, err := strconv.ParseInt(pk, 10, 64)
			if err != nil {
				n = -1
			}
			out = append(out, iptLine{table: cur, rule: strings.TrimSpace(ln[end+1:]), packets: n})
		case cur == table && strings.HasPrefix(ln, "-A "):
			out = append(out, iptLine{table: cur, rule: ln, packets: -1})
		}
	}
	return out
}

// flagValue reads the value of an iptables flag ("-s 198.18.0.0/24").
func flagValue(rule, flag string) string {
	fs := strings.Fields(rule)
	for i := 0; i+1 < len(fs); i++ {
		if fs[i] == flag {
			return fs[i+1]
		}
	}
	return ""
}
