package e2essh_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsdoctor/lvsdoctor/checks/labtest"
	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/lvs/lab"
	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
	"github.com/lvsdoctor/lvsdoctor/report"
)

// The SSH end-to-end tests: a lab built with --ssh (a management network
// in NAME-mgmt, a bastion, a real OpenSSH sshd in every host), the check
// run as `lvsdoctor check` from inside NAME-mgmt over SSH, and its error
// findings compared with the same check over netns on the same lab.

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 && !testenv.Strict() {
		// The tests skip one by one with the reason; no binary needed.
		os.Exit(m.Run())
	}
	os.Exit(labtest.Main(m))
}

type inject struct{ spec, variant string }

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

// dump logs the result of a failing comparison.
func dump(t *testing.T, r *result.Result) {
	t.Helper()
	var b strings.Builder
	report.Text(&b, r, false)
	t.Log("\n" + b.String())
}

// sshLab is a lab with its management network and the files lab up
// --ssh wrote.
type sshLab struct {
	st     *lab.State
	netns  string // the netns topology file
	before map[string]bool
}

func upSSHLab(t *testing.T, o lab.Options) *sshLab {
	t.Helper()
	o.SSH = true
	st, _ := labtest.Up(t, o)
	if st.SSH == nil {
		t.Fatal("lab up --ssh recorded no management network")
	}
	p := filepath.Join(t.TempDir(), "lab.yaml")
	if err := st.WriteTopologyFile(p); err != nil {
		t.Fatal(err)
	}
	l := &sshLab{st: st, netns: p, before: map[string]bool{}}
	for _, d := range tmpAgents() {
		l.before[d] = true
	}
	return l
}

func requireSSH(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "sshd", "openssh-server")
	if os.Getenv("LVSDOCTOR_AGENT") == "" {
		t.Fatal("TestMain did not build the agent")
	}
}

// runCheck runs `lvsdoctor check --format json` with topo: from inside
// the namespace ns (the management one: the SSH connections start there),
// or from this namespace when ns is "".
func runCheck(t *testing.T, ns, topo string, extra ...string) *result.Result {
	t.Helper()
	args := append([]string{"check", "-f", topo, "--format", "json"}, extra...)
	cmd := exec.Command(os.Getenv("LVSDOCTOR_AGENT"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := lab.RunIn
	if ns == "" {
		start = func(_ string, fn func() error) error { return fn() }
	}
	if err := start(ns, cmd.Start); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("check %s did not finish in 90 s; stderr:\n%s", topo, stderr.String())
	}
	var r result.Result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("check %s: no JSON result (%v); stderr:\n%s", topo, err, stderr.String())
	}
	if r.Verdict == result.Inconclusive {
		t.Fatalf("check %s inconclusive; stderr:\n%s\nresult: %s", topo, stderr.String(), stdout.String())
	}
	return &r
}

// sshCheck runs the check over SSH from the management namespace.
func (l *sshLab) sshCheck(t *testing.T, topo string, extra ...string) *result.Result {
	t.Helper()
	return runCheck(t, l.st.SSH.Mgmt, topo, append([]string{"--ssh-config", l.st.SSH.Config}, extra...)...)
}

func findingIDs(r *result.Result, sev result.Severity) string {
	var ids []string
	for _, f := range r.Findings {
		if f.Severity == sev {
			ids = append(ids, f.ID)
		}
	}
	return strings.Join(sorted(ids), ",")
}

// compare requires the same error findings over SSH as over netns.
func compare(t *testing.T, netns, ssh *result.Result) {
	t.Helper()
	if a, b := findingIDs(netns, result.SevError), findingIDs(ssh, result.SevError); a != b {
		dump(t, netns)
		dump(t, ssh)
		t.Fatalf("error findings over netns [%s], over SSH [%s]", a, b)
	}
	if a, b := findingIDs(netns, result.SevWarning), findingIDs(ssh, result.SevWarning); a != b {
		t.Logf("warnings differ: netns [%s], SSH [%s]", a, b)
	}
}

// tmpAgents lists the agents' private upload directories.
func tmpAgents() []string {
	m, _ := filepath.Glob("/tmp/lvsdoctor.*")
	return m
}

// labAgents lists lvsdoctor agent processes (and their sh -c / sudo
// wrappers) inside the lab's namespaces.
func labAgents(st *lab.State) []string {
	inodes := map[uint64]bool{}
	for _, ino := range st.Inodes {
		inodes[ino] = true
	}
	ents, _ := os.ReadDir("/proc")
	var r []string
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			continue
		}
		ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(l, "net:["), "]"), 10, 64)
		if err != nil || !inodes[ino] {
			continue
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		cl := strings.Join(argv, " ")
		if strings.Contains(cl, "lvsdoctor") && !strings.Contains(cl, " lab serve") && !strings.HasPrefix(cl, "sshd:") && !strings.Contains(argv[0], "sshd") {
			r = append(r, fmt.Sprintf("%d: %s", pid, cl))
		}
	}
	return r
}

// requireNothingLeft: no agent process in the lab and no new upload
// directory, allowing the remote wrappers a moment to finish.
func (l *sshLab) requireNothingLeft(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		procs := labAgents(l.st)
		var dirs []string
		for _, d := range tmpAgents() {
			if !l.before[d] {
				dirs = append(dirs, d)
			}
		}
		if len(procs) == 0 && len(dirs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind: processes %v, directories %v", procs, dirs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSSHLab: the healthy lab over SSH through the bastion (ProxyJump),
// directly, and as a non-root user with sudo -n, each with the findings of
// netns and nothing left behind; then a run interrupted with SIGINT.
func TestSSHLab(t *testing.T) {
	requireSSH(t)
	testenv.RequireCommand(t, "sudo", "sudo")
	useradd := testenv.RequireCommand(t, "useradd", "passwd")
	user := testUser(t, useradd)
	l := upSSHLab(t, lab.Options{SSHUser: user})
	ss := l.st.SSH
	netns := runCheck(t, "", l.netns)
	if netns.Verdict != result.Healthy {
		dump(t, netns)
		t.Fatalf("netns: verdict %s", netns.Verdict)
	}
	for _, c := range []struct{ name, topo string }{
		{"proxyjump", ss.Topology},
		{"direct", ss.Direct},
		{"sudo", ss.SudoTopo},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := l.sshCheck(t, c.topo)
			compare(t, netns, r)
			if r.Verdict != result.Healthy {
				t.Fatalf("verdict %s", r.Verdict)
			}
			l.requireNothingLeft(t)
		})
	}
	t.Run("interrupted", func(t *testing.T) {
		for _, topo := range []string{ss.Topology, ss.SudoTopo} {
			cmd := exec.Command(os.Getenv("LVSDOCTOR_AGENT"), "check", "-f", topo, "--ssh-config", ss.Config, "-q")
			if err := lab.RunIn(ss.Mgmt, cmd.Start); err != nil {
				t.Fatal(err)
			}
			// SIGINT once the agents run on every host.
			want := len(l.st.Hosts) - 2 // not the switch, not the router
			deadline := time.Now().Add(60 * time.Second)
			for countAgents(l.st) < want && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if n := countAgents(l.st); n < want {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("%s: only %d of %d agents started", topo, n, want)
			}
			cmd.Process.Signal(syscall.SIGINT)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
					t.Errorf("%s: interrupted check ended with %v, want exit 3", topo, err)
				}
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("%s: the check did not stop within 15 s of SIGINT", topo)
			}
			l.requireNothingLeft(t)
		}
	})
}

// countAgents counts the agents themselves (argv "... agent") running in
// the lab's namespaces.
func countAgents(st *lab.State) int {
	n := 0
	for _, p := range labAgents(st) {
		if strings.HasSuffix(p, "/lvsdoctor agent") {
			n++
		}
	}
	return n
}

// testUser creates a non-root login for the sudo -n test (no home, no
// password, not locked: sshd without PAM refuses locked accounts) and
// removes it when the test ends.
func testUser(t *testing.T, useradd string) string {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	name := "lvsdt" + hex.EncodeToString(b)
	if out, err := exec.Command(useradd, "-M", "-N", "-d", "/nonexistent", "-s", "/bin/sh", "-p", "*", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v %s", name, err, out)
		}
	})
	return name
}

// TestSSHLabFaults injects every fault of `lab fault --list` (default
// variant, plus the variants the netns tests single out) into labs built
// with --ssh, and requires the same error findings over SSH as over netns
// on the same lab. The agent is the test's own lvsdoctor (--agent, the
// lab shares this machine's filesystem): uploads are TestSSHLab's.
func TestSSHLabFaults(t *testing.T) {
	requireSSH(t)
	type group struct {
		opts   lab.Options
		faults []inject
	}
	var groups []*group
	byLab := map[string]*group{}
	add := func(o lab.Options, f inject) {
		k := o.Topology + "/" + o.Datapath
		g := byLab[k]
		if g == nil {
			g = &group{opts: lab.Options{Topology: o.Topology, Datapath: o.Datapath}}
			byLab[k] = g
			groups = append(groups, g)
		}
		g.faults = append(g.faults, f)
	}
	add(lab.Options{}, inject{"healthy", ""})
	for _, f := range lab.List() {
		if f.Lab.Datapath == "ipvs" {
			continue // the IPVS lab's own tests cover it; the kernel may lack IPVS
		}
		add(f.Lab, inject{f.ID, ""})
	}
	for _, f := range []inject{{"director-rpfilter-requests", "warm"}, {"rs-wrong-gateway", "router-drops"}, {"rs-firewall-reject", "admin-prohibited"}} {
		add(lab.Options{}, f)
	}
	for _, g := range groups {
		name := "nat"
		if g.opts.Topology != "" || g.opts.Datapath != "" {
			name = strings.Trim(g.opts.Topology+"-"+g.opts.Datapath, "-")
		}
		t.Run(name, func(t *testing.T) {
			l := upSSHLab(t, g.opts)
			for _, f := range g.faults {
				fname := f.spec
				if f.variant != "" {
					fname += "/" + f.variant
				}
				t.Run(fname, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					if err := lab.Clear(ctx, l.st.Name); err != nil {
						t.Fatalf("clear: %v", err)
					}
					if f.spec != "healthy" {
						if err := lab.Inject(ctx, l.st.Name, f.spec, "", f.variant); err != nil {
							t.Fatalf("inject: %v", err)
						}
					}
					netns := runCheck(t, "", l.netns)
					// The kernel's ICMP rate limit (1 s per peer) would
					// otherwise give the second run other traceroutes.
					time.Sleep(1100 * time.Millisecond)
					ssh := l.sshCheck(t, l.st.SSH.Direct, "--agent", os.Getenv("LVSDOCTOR_AGENT"))
					compare(t, netns, ssh)
					t.Logf("netns and SSH: [%s]", findingIDs(ssh, result.SevError))
					if f.spec != "healthy" && len(netns.Findings) == 0 {
						t.Errorf("%s gave no finding at all", f.spec)
					}
				})
			}
			l.requireNothingLeft(t)
		})
	}
}
