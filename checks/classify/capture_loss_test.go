package classify

import (
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// A director whose capture lost packets (a slow host: the VM under TCG
// lost up to 352) must give the same error findings as one that saw
// everything, never a confident fault made of the capture's silence. Each
// case replays a recording, removes what a losing capture would miss,
// records the loss, and wants the recording's own findings.
func TestCaptureLoss(t *testing.T) {
	for _, c := range []struct {
		fixture string
		lose    func(p obs.Packet) bool // the director's packets the capture misses
	}{
		// The director's own RSTs from the VIP: the answers that tell a
		// missing service, or an unmarked firewall-mark service.
		{"ipvs-service-missing", func(p obs.Packet) bool { return p.Dir == "out" && p.Proto == "tcp" }},
		{"fwmark-not-marked--wrong-port", func(p obs.Packet) bool { return p.Dir == "out" && p.Proto == "tcp" }},
		{"fwmark-not-marked", func(p obs.Packet) bool { return p.Dir == "out" && p.Proto == "tcp" }},
		// The requests leaving toward the real servers: without them a
		// wrong gateway would read as requests dying in the director.
		{"rs-wrong-gateway", func(p obs.Packet) bool { return p.Dir == "out" && p.Iface == "eth1" }},
		{"rs-wrong-gateway--no-default", func(p obs.Packet) bool { return p.Dir == "out" && p.Iface == "eth1" }},
		// A healthy cluster stays without error findings, whichever side
		// of the director's capture overflowed.
		{"healthy", func(p obs.Packet) bool { return p.Dir == "out" && p.Iface == "eth1" }},
		{"healthy", func(p obs.Packet) bool { return p.Iface == "eth0" && p.Proto == "tcp" }},
		{"ipvs-healthy", func(p obs.Packet) bool { return p.Dir == "in" && p.Iface == "eth1" }},
	} {
		t.Run(c.fixture, func(t *testing.T) {
			var in Input
			load(t, "../../fixtures/"+c.fixture+"/observations.json", &in)
			var exp struct{ Findings []string }
			load(t, "../../fixtures/"+c.fixture+"/expected.json", &exp)
			lost := 0
			for _, h := range in.Hosts {
				if h.Role != RoleDirector || h.Capture == nil {
					continue
				}
				kept := h.Capture.Packets[:0]
				for _, p := range h.Capture.Packets {
					if c.lose(p) {
						lost++
						continue
					}
					kept = append(kept, p)
				}
				h.Capture.Packets = kept
				h.Capture.Dropped += lost
			}
			if lost == 0 {
				t.Fatal("the case removes nothing from the director's capture")
			}
			var got []string
			for _, f := range Run(&in).Findings {
				if f.Severity == result.SevError && !slices.Contains(got, f.ID) {
					got = append(got, f.ID)
				}
			}
			sort.Strings(got)
			want := slices.Compact(slices.Sorted(slices.Values(exp.Findings)))
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("with %d of the director's packets lost: findings %v, want %v", lost, got, want)
			}
		})
	}
}

// A reject rule's ICMP errors are rate-limited by the kernel per
// destination: when some rejected requests go unanswered, the rule is
// still a reject, not a silent drop (seen over SSH right after a netns
// check had used up the budget).
func TestRejectRateLimited(t *testing.T) {
	for _, fixture := range []string{"rs-firewall-reject", "rs-firewall-reject--admin-prohibited"} {
		t.Run(fixture, func(t *testing.T) {
			var in Input
			load(t, "../../fixtures/"+fixture+"/observations.json", &in)
			removed := 0
			for _, h := range in.Hosts {
				if h.Role != RoleRealServer || h.Capture == nil {
					continue
				}
				kept := h.Capture.Packets[:0]
				for _, p := range h.Capture.Packets {
					// The first ICMP error leaving the host never did.
					if removed == 0 && p.Dir == "out" && p.Proto == "icmp" && p.ICMPType == 3 {
						removed++
						continue
					}
					kept = append(kept, p)
				}
				h.Capture.Packets = kept
			}
			if removed == 0 {
				t.Fatal("no ICMP error to remove")
			}
			var got []string
			for _, f := range Run(&in).Findings {
				if f.Severity == result.SevError {
					got = append(got, f.ID)
				}
			}
			if strings.Join(got, ",") != "rs-firewall-reject" {
				t.Errorf("one rate-limited ICMP error: findings %v, want [rs-firewall-reject]", got)
			}
		})
	}
}
