package classify

import (
	"fmt"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
)

func init() { addRule(ruleIPVSConnTableSmall) }

// connsPerBucket is where the chains of IPVS's connection hash table get
// long enough to cost every packet a walk: the table does not grow (its
// size is fixed when ip_vs loads, conn_tab_bits, 4096 buckets by
// default), so a busy director needs it set larger.
const connsPerBucket = 16

// The connection hash table (the size= of `ipvsadm -Ln`) is small for the
// connections the director holds: every packet walks a chain of about
// connections/size entries (warning, from the table read).
func ruleIPVSConnTableSmall(v *view) []result.Finding {
	_, t := v.ipvsTable()
	if t == nil || t.ConnTableSize == 0 {
		return nil
	}
	conns := 0
	for _, s := range t.Services {
		for _, d := range s.Dests {
			conns += d.ActiveC + d.InactiveC
		}
	}
	if conns <= connsPerBucket*t.ConnTableSize {
		return nil
	}
	bits, size := 0, 1
	for size*connsPerBucket < conns*2 && bits < 20 {
		bits++
		size <<= 1
	}
	bits = max(bits, 12)
	f := newFinding("ipvs-conn-table-small", v.director.Label)
	f.Summary = fmt.Sprintf("%s holds %d IPVS connections in a hash table of %d buckets: about %d per chain, walked by every packet", v.director.Label, conns, t.ConnTableSize, conns/t.ConnTableSize)
	f.Evidence = []string{
		fmt.Sprintf("ipvsadm -Ln: IP Virtual Server version %s (size=%d)", t.Version, t.ConnTableSize),
		fmt.Sprintf("active + inactive connections over all real servers: %d", conns),
	}
	f.Remedy = []string{
		fmt.Sprintf("echo 'options ip_vs conn_tab_bits=%d' > /etc/modprobe.d/ip_vs.conf   # on %s", bits, v.director.Label),
		"# it takes effect when ip_vs is loaded again (ipvsadm -C, modprobe -r ip_vs, reload the table), or at the next boot",
	}
	return []result.Finding{f}
}
