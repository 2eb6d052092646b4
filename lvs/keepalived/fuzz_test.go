package keepalived

import (
	"errors"
	"github.com/lvsdoctor/lvsdoctor/lvs/tablediff"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.conf"))
	if len(files) == 0 {
		f.Fatal("no testdata/*.conf seeds")
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("virtual_server_group G {\n 10.0.0.1-255 80\n fwmark 3\n}\nvirtual_server group G {\n real_server 10.0.1.1 {\n }\n}\n")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse("k.conf", []byte(s))
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Pos.Line < 1 || !strings.HasPrefix(err.Error(), "k.conf:") {
				t.Fatalf("error %q does not name file:line", err)
			}
			return
		}
		for _, w := range c.Warnings {
			if !strings.HasPrefix(w, "k.conf:") {
				t.Fatalf("warning %q does not name file:line", w)
			}
		}
		svcs := c.Services()
		for _, s := range svcs {
			if s.Proto == "" || (s.Proto != "fwmark" && s.VIP == "") {
				t.Fatalf("incomplete service %+v", s)
			}
			for _, r := range s.RealServers {
				if r.Address == "" || r.Weight == nil || r.Forward == "" {
					t.Fatalf("incomplete real server %+v", r)
				}
			}
		}
		// a table built from the same services compares equal
		var tb obs.IPVSTable
		for _, s := range svcs {
			os := obs.IPVSService{Proto: s.Proto, Addr: s.VIP, Mark: s.Mark, Scheduler: s.Scheduler, Persistent: s.Persistent}
			for _, r := range s.RealServers {
				os.Dests = append(os.Dests, obs.IPVSDest{Addr: r.Address, Forward: r.Forward, Weight: r.W()})
			}
			tb.Services = append(tb.Services, os)
		}
		if d := tablediff.Compare(svcs, tb); len(d) != 0 && !duplicates(svcs) {
			t.Fatalf("a table equal to the configuration differs: %v", d)
		}
	})
}

// duplicates: the same service or real server configured twice (keepalived
// drops the second) makes the table-equal check meaningless.
func duplicates(svcs []topology.Service) bool {
	seen := map[string]bool{}
	for _, s := range svcs {
		if seen[s.String()] {
			return true
		}
		seen[s.String()] = true
		rs := map[string]bool{}
		for _, r := range s.RealServers {
			if rs[r.Address] {
				return true
			}
			rs[r.Address] = true
		}
	}
	return false
}
