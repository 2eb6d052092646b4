package tui

import (
	"path/filepath"
	"testing"

	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
)

// TestSaveRoundTrip: what the questions build is written in DESIGN.md's
// format and reads back the same, whatever the host forms.
func TestSaveRoundTrip(t *testing.T) {
	d := &draft{director: "ssh://root@[2001:db8::1]:2222", vip: "203.0.113.100:53", proto: "udp",
		rss: []topology.RealServer{
			{Address: "198.18.0.2:53", Name: "rs1", Host: "admin@rs1.example"},
			{Address: "198.18.0.3:53", Name: "rs2", Host: "local"},
		},
		client: "jump-alias", cip: ""}
	p := filepath.Join(t.TempDir(), "t.yaml")
	top, err := Save(p, d.topology())
	if err != nil {
		t.Fatalf("%v\n%s", err, YAML(d.topology()))
	}
	if top.Director.Host != d.director || top.Client.Host != "jump-alias" || top.Client.Address != "" ||
		top.Services[0].Proto != "udp" || top.Services[0].RealServers[0].Host != "admin@rs1.example" ||
		top.Services[0].RealServers[1].Host != "local" || top.Services[0].VIP != "203.0.113.100:53" {
		t.Errorf("read back %+v\n%s", top, YAML(d.topology()))
	}
}
