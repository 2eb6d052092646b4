package checks_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lvsdoctor/lvsdoctor/checks"
	"github.com/lvsdoctor/lvsdoctor/checks/labtest"
	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/lvs/lab"
	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
	"github.com/lvsdoctor/lvsdoctor/probes/transport"
)

// A host that goes away mid-check (its agent killed once the test
// connections start) is reported as lost, with the step it was in; the
// others are still checked and the verdict is inconclusive, not a fault
// made up from the half of its observations that exists.
func TestLabHostLostMidCheck(t *testing.T) {
	testenv.RequireRoot(t)
	// rs2's agent must be able to end alone, as a remote host's does.
	transport.Defaults.NetnsPerHost = true
	defer func() { transport.Defaults.NetnsPerHost = false }()
	st, top := labtest.Up(t, lab.Options{})
	ns := st.Host("rs2").Namespace
	var once sync.Once
	killed := 0
	opt := checks.Options{Version: "test", Events: func(e checks.Event) {
		if e.Step == "Q3" && e.State == checks.StateRunning {
			once.Do(func() { killed = killAgentsIn(t, ns) })
		}
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, in := checks.Run(ctx, top, opt)
	if killed == 0 {
		t.Fatalf("no agent found in %s to kill", ns)
	}
	if r.Verdict != result.Inconclusive || r.ExitCode() != 3 {
		dump(t, r, in)
		t.Fatalf("verdict %s (exit %d), want inconclusive (3)", r.Verdict, r.ExitCode())
	}
	lost := false
	for _, u := range r.Unchecked {
		if u.Host == "rs2" && strings.Contains(u.Why, "lost mid-check, during") {
			lost = true
		}
	}
	if !lost {
		t.Errorf("rs2 is not reported as lost mid-check: %+v", r.Unchecked)
	}
	for _, s := range r.Steps {
		if s.Host == "rs1" && s.Status != result.Pass {
			t.Errorf("rs1 %s %s: %s (%s), want pass: the rest of the cluster is still checked", s.ID, s.Service, s.Status, s.Summary)
		}
	}
}

// killAgentsIn kills the lvsdoctor agents running in the network
// namespace ns (as the lab names it under /run/netns) and says how many.
func killAgentsIn(t *testing.T, ns string) int {
	var want syscall.Stat_t
	if err := syscall.Stat(filepath.Join("/run/netns", ns), &want); err != nil {
		t.Fatal(err)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	n := 0
	for _, p := range procs {
		var got syscall.Stat_t
		if syscall.Stat(filepath.Join(p, "ns/net"), &got) != nil || got.Ino != want.Ino {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join(p, "cmdline"))
		args := bytes.Split(bytes.TrimRight(cmd, "\x00"), []byte{0})
		if len(args) < 2 || string(args[len(args)-1]) != "agent" {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(p)); err == nil && syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}
