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
	"github.com/lvsdoctor/lvsdoctor/checks/classify"
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
	r, in, _ := runSignallingRS2(t, syscall.SIGKILL, checks.Options{Version: "test"})
	wantLost(t, r, in, "rs2", "lost mid-check, during")
}

// A host that stops answering without closing its connection (its agent
// frozen once the test connections start: a probe hung there, or the host
// down behind a network that drops everything) is reported as lost after
// CallTimeout, not waited for forever; the rest is still checked.
func TestLabHostHangsMidCheck(t *testing.T) {
	const limit = 3 * time.Second
	r, in, took := runSignallingRS2(t, syscall.SIGSTOP, checks.Options{Version: "test", CallTimeout: limit})
	if took > 3*limit {
		t.Errorf("the check took %s with a host that stopped answering, bounded by %s a request", took, limit)
	}
	wantLost(t, r, in, "rs2", "lost mid-check", "no answer from its agent within 3s")
}

// runSignallingRS2 checks a lab whose hosts each have an agent of their
// own (rs2's must be able to end alone, as a remote host's does), sends
// sig to rs2's agent once the test connections start, and returns the
// result and how long the check took. rs2's agent is killed at the end,
// so that a frozen one is never left behind.
func runSignallingRS2(t *testing.T, sig syscall.Signal, opt checks.Options) (*result.Result, *classify.Input, time.Duration) {
	t.Helper()
	testenv.RequireRoot(t)
	transport.Defaults.NetnsPerHost = true
	defer func() { transport.Defaults.NetnsPerHost = false }()
	st, top := labtest.Up(t, lab.Options{})
	ns := st.Host("rs2").Namespace
	var once sync.Once
	signalled := 0
	opt.Events = func(e checks.Event) {
		if e.Step == "Q3" && e.State == checks.StateRunning {
			once.Do(func() { signalled = signalAgentsIn(t, ns, sig) })
		}
	}
	defer signalAgentsIn(t, ns, syscall.SIGKILL)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	t0 := time.Now()
	r, in := checks.Run(ctx, top, opt)
	took := time.Since(t0)
	if signalled == 0 {
		t.Fatalf("no agent found in %s to signal", ns)
	}
	return r, in, took
}

// wantLost checks an inconclusive result that names host as unchecked with
// every one of why in its reason, and in which rs1 (the rest of the
// cluster) still passes every step.
func wantLost(t *testing.T, r *result.Result, in *classify.Input, host string, why ...string) {
	t.Helper()
	if r.Verdict != result.Inconclusive || r.ExitCode() != 3 {
		dump(t, r, in)
		t.Fatalf("verdict %s (exit %d), want inconclusive (3)", r.Verdict, r.ExitCode())
	}
	lost := false
	for _, u := range r.Unchecked {
		if u.Host != host {
			continue
		}
		all := true
		for _, w := range why {
			all = all && strings.Contains(u.Why, w)
		}
		lost = lost || all
	}
	if !lost {
		t.Errorf("%s is not reported with %q: %+v", host, why, r.Unchecked)
	}
	for _, s := range r.Steps {
		if s.Host == "rs1" && s.Status != result.Pass {
			t.Errorf("rs1 %s %s: %s (%s), want pass: the rest of the cluster is still checked", s.ID, s.Service, s.Status, s.Summary)
		}
	}
}

// signalAgentsIn sends sig to the lvsdoctor agents running in the network
// namespace ns (as the lab names it under /run/netns) and says how many.
func signalAgentsIn(t *testing.T, ns string, sig syscall.Signal) int {
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
		if pid, err := strconv.Atoi(filepath.Base(p)); err == nil && syscall.Kill(pid, sig) == nil {
			n++
		}
	}
	return n
}
