package facts

import (
	"fmt"
	"net"
	"testing"

	"github.com/lvsdoctor/lvsdoctor/probes/internal/nstest"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
)

// The director's table is read connection by connection: the test's
// entries come back whatever else the table holds, one that does not
// exist is left out, and an empty list still dumps everything.
func TestConntrackLookup(t *testing.T) {
	testenv.RequireRoot(t)
	p := nstest.NewPair(t)
	addRules(t, p.B) // a ct state rule: conntrack tracks in B
	nstest.ServeTCP(t, p.B, p.BAddr+":8080", func(c net.Conn) { c.Close() })
	var keys []obs.CTKey
	for range 20 { // the "other" connections of a busy table, and the test's
		p.A.MustDo(t, func() error {
			c, err := net.Dial("tcp4", p.BAddr+":8080")
			if err != nil {
				return err
			}
			keys = append(keys, obs.CTKey{Proto: "tcp", Src: c.LocalAddr().String(), Dst: c.RemoteAddr().String()})
			return c.Close()
		})
	}
	want := keys[7]
	var got, all []obs.CTEntry
	p.B.MustDo(t, func() (err error) {
		got, err = readConntrack([]obs.CTKey{
			want, want, // asked twice, read once
			{Proto: "tcp", Src: "198.18.0.1:1", Dst: want.Dst}, // no such connection
			{Proto: "sctp", Src: want.Src, Dst: want.Dst},      // not asked this way
			{Proto: "tcp", Src: "not an address", Dst: want.Dst},
		})
		if err != nil {
			return err
		}
		all, err = readConntrack(nil)
		return err
	})
	// Many at once go over several sockets: every one found, none twice.
	many := append([]obs.CTKey(nil), keys...)
	for i := range 60 {
		many = append(many, obs.CTKey{Proto: "tcp", Src: fmt.Sprintf("198.18.0.1:%d", 1000+i), Dst: want.Dst})
	}
	var several []obs.CTEntry
	p.B.MustDo(t, func() (err error) {
		several, err = readConntrack(many)
		return err
	})
	seen := map[string]bool{}
	for _, e := range several {
		seen[e.OrigSrc] = true
	}
	if len(several) != len(keys) || len(seen) != len(keys) {
		t.Errorf("%d lookups, %d of them real: %d entries, %d distinct", len(many), len(keys), len(several), len(seen))
	}
	if len(got) != 1 || got[0].Proto != "tcp" || got[0].OrigSrc != want.Src || got[0].OrigDst != want.Dst || got[0].ReplSrc != want.Dst || got[0].State == "" {
		t.Errorf("lookup of %v: %+v", want, got)
	}
	if len(all) < len(keys) {
		t.Errorf("dump: %d entries, want at least %d", len(all), len(keys))
	}
}
