package checks_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lvsdoctor/lvsdoctor/checks"
	"github.com/lvsdoctor/lvsdoctor/checks/labtest"
	"github.com/lvsdoctor/lvsdoctor/lvs/discover"
	"github.com/lvsdoctor/lvsdoctor/lvs/lab"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/agent"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
	"github.com/lvsdoctor/lvsdoctor/probes/transport"
)

// TestDiscoverLab: the topology discover writes from the lab director's
// live table, with the real servers' hosts from a host map, checks
// healthy.
func TestDiscoverLab(t *testing.T) {
	testenv.RequireRoot(t)
	st, _ := labtest.Up(t, lab.Options{RealServers: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var hostMap strings.Builder
	for i, role := range st.RealServerRoles() {
		fmt.Fprintf(&hostMap, "%s netns:%s\n", lab.RIP(i+1), st.Host(role).Namespace)
	}
	hosts, err := discover.ParseHosts("map", hostMap.String())
	if err != nil {
		t.Fatal(err)
	}
	director := "netns:" + st.Host(lab.RoleDirector).Namespace
	conn, err := transport.Dial(ctx, director)
	if err != nil {
		t.Fatal(err)
	}
	var f obs.Facts
	err = conn.Call(ctx, agent.OpFacts, obs.FactsArgs{SkipConntrack: true, SkipListeners: true}, &f)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := discover.Services(&f, hosts)
	if err != nil {
		t.Fatal(err)
	}
	text := discover.Write(director, "netns:"+st.Host(lab.RoleClient).Namespace, st.ClientIP().String(), svcs)
	top, err := topology.Parse("discovered.yaml", []byte(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if len(top.Services) < 2 || len(top.Services[0].RealServers) != 3 {
		t.Fatalf("discovered too little:\n%s", text)
	}
	r, in := checks.Run(ctx, top, checks.Options{Version: "test"})
	if r.Verdict != "healthy" || len(r.Findings) != 0 {
		dump(t, r, in)
		t.Fatalf("discovered topology of the healthy lab: %s\n%s", r.Verdict, text)
	}
}
