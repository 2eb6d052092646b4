package classify

import (
	"strings"
	"testing"
)

// The conntrack-invalid-drop recording: the director tracked the client's
// UDP and FTP test connections as usual, only the HTTP requests were
// notrack'd. The evidence must say conntrack holds no entry for the
// connections whose replies died, not be silenced by the others.
func TestConntrackInvalidEvidence(t *testing.T) {
	var in Input
	load(t, "../../fixtures/conntrack-invalid-drop/observations.json", &in)
	others := 0
	for _, e := range in.Hosts["director"].Facts().Conntrack {
		if e.Proto != "tcp" || !strings.HasSuffix(e.ReplSrc, ":80") {
			others++
		}
	}
	if others == 0 {
		t.Fatal("the recording holds no other entries of the client's: the case tests nothing")
	}
	for _, f := range Run(&in).Findings {
		if f.ID != "conntrack-invalid-drop" {
			continue
		}
		for _, ev := range f.Evidence {
			if strings.Contains(ev, "conntrack table holds no entry for the test connections") {
				return
			}
		}
		t.Fatalf("evidence %q: no word of the missing conntrack entries", f.Evidence)
	}
	t.Fatal("no conntrack-invalid-drop finding")
}
