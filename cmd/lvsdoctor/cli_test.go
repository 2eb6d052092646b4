package main

// End-to-end tests of the CLI as an operator uses it: they run the real,
// built lvsdoctor binary (the agents and the lab's services re-execute it)
// and assert exit codes and messages. Usage errors, help and the fault list
// are testscript scripts in testdata/script (no root needed); everything
// that builds a lab is below and needs root.
//
// Labs are named lvsdc + a random suffix and torn down with `lab down` in
// t.Cleanup, even when a test fails. No test sends traffic from the root
// namespace or adds anything to it: all traffic is the check's own, inside
// the lab's namespaces.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
	"github.com/rogpeppe/go-internal/testscript"
)

// bin is the built lvsdoctor; binDir holds it and is readable by everyone
// (mode 0755), so that user nobody can run it.
var bin, binDir string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "lvsdc-cli")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binDir, bin = dir, filepath.Join(dir, "lvsdoctor")
	build := exec.Command("go", "build", "-o", bin, "github.com/lvsdoctor/lvsdoctor/cmd/lvsdoctor")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		return 1
	}
	os.Setenv("LVSDOCTOR_AGENT", bin)
	return m.Run()
}

// TestScripts runs testdata/script/*.txtar. Their own command
//
//	exits CODE PROG [ARGS...]
//
// runs PROG (lvsdoctor is the built binary) and requires exit code CODE;
// stdout and stderr are then matched as after exec.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(e *testscript.Env) error {
			e.Setenv("PATH", binDir+string(os.PathListSeparator)+e.Getenv("PATH"))
			e.Setenv("LVSDOCTOR_AGENT", bin)
			e.Setenv("NO_COLOR", "1")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) < 2 {
					ts.Fatalf("usage: exits CODE PROG [ARGS...]")
				}
				want, err := strconv.Atoi(args[0])
				if err != nil {
					ts.Fatalf("exits: bad code %q", args[0])
				}
				prog := args[1]
				if prog == "lvsdoctor" {
					prog = bin
				}
				got := 0
				if err := ts.Exec(prog, args[2:]...); err != nil {
					var ee *exec.ExitError
					if !errors.As(err, &ee) {
						ts.Fatalf("exits: %v", err)
					}
					got = ee.ExitCode()
				}
				if got != want {
					ts.Fatalf("exit code %d, want %d", got, want)
				}
			},
		},
	})
}

// run is one run of the binary.
type run struct {
	code           int
	stdout, stderr string
}

func (r run) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// lvsdoctor runs the binary with args and waits at most two minutes.
func lvsdoctor(t *testing.T, args ...string) run {
	t.Helper()
	return runCmd(t, exec.Command(bin, args...))
}

func runCmd(t *testing.T, cmd *exec.Cmd) run {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s: still running after 2 minutes\n--- stdout\n%s--- stderr\n%s", cmd, &stdout, &stderr)
	}
	r := run{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%s: %v", cmd, err)
		}
		r.code = ee.ExitCode()
	}
	t.Logf("$ %s\n%s", strings.Join(cmd.Args, " "), r)
	return r
}

func labName() string {
	b := make([]byte, 3)
	rand.Read(b)
	return "lvsdc" + hex.EncodeToString(b)
}

// labUp builds a lab with the CLI, registers its removal, and returns its
// name and topology file.
func labUp(t *testing.T) (name, file string) {
	t.Helper()
	testenv.RequireRoot(t)
	name = labName()
	file = filepath.Join(t.TempDir(), name+".yaml")
	t.Cleanup(func() { labDown(t, name) })
	r := lvsdoctor(t, "lab", "up", "--name", name, "-o", file)
	if r.code != 0 {
		t.Fatalf("lab up: %s", r)
	}
	for _, want := range []string{"lab " + name + " is up", "topology file: " + file} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("lab up does not say %q:\n%s", want, r)
		}
	}
	return name, file
}

// labDown removes the lab and requires that nothing of it is left.
func labDown(t *testing.T, name string) {
	t.Helper()
	r := lvsdoctor(t, "lab", "down", "--name", name)
	if r.code != 0 {
		t.Errorf("lab down --name %s: %s", name, r)
	}
	if left := namespacesOf(t, name); len(left) > 0 {
		t.Errorf("lab down --name %s left namespaces %v", name, left)
	}
	if _, err := os.Stat(filepath.Join("/run/lvsdoctor/labs", name)); !os.IsNotExist(err) {
		t.Errorf("lab down --name %s left its state /run/lvsdoctor/labs/%s (%v)", name, name, err)
	}
}

// namespacesOf lists the named namespaces whose name starts with prefix,
// both as `ip netns list` shows them and as /run/netns holds them.
func namespacesOf(t *testing.T, prefix string) []string {
	t.Helper()
	var found []string
	ents, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			found = append(found, "/run/netns/"+e.Name())
		}
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
				found = append(found, "ip netns: "+f[0])
			}
		}
	}
	return found
}

// jsonResult is the part of lvsdoctor/result/v1 the tests look at.
type jsonResult struct {
	Schema   string `json:"schema"`
	Verdict  string `json:"verdict"`
	Steps    []step `json:"steps"`
	Findings []struct {
		ID       string   `json:"id"`
		Severity string   `json:"severity"`
		Host     string   `json:"host"`
		Address  string   `json:"address"`
		Summary  string   `json:"summary"`
		Evidence []string `json:"evidence"`
		Remedy   []string `json:"remedy"`
	} `json:"findings"`
	Unchecked []struct {
		Host string `json:"host"`
		What string `json:"what"`
		Why  string `json:"why"`
	} `json:"unchecked"`
}

type step struct {
	ID      string `json:"id"`
	Host    string `json:"host"`
	Service string `json:"service"`
	Status  string `json:"status"`
	Summary string `json:"summary"`
}

func parseResult(t *testing.T, b []byte) (jsonResult, map[string]json.RawMessage) {
	t.Helper()
	var r jsonResult
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("the JSON result does not parse: %v\n%s", err, b)
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if r.Schema != "lvsdoctor/result/v1" {
		t.Errorf(`"schema" is %q, want "lvsdoctor/result/v1"`, r.Schema)
	}
	return r, raw
}

func (r jsonResult) errorFindings() []string {
	var ids []string
	for _, f := range r.Findings {
		if f.Severity == "error" {
			ids = append(ids, f.ID)
		}
	}
	return ids
}

func (r jsonResult) stepsOf(id, host string) []step {
	var s []step
	for _, st := range r.Steps {
		if st.ID == id && st.Host == host {
			s = append(s, st)
		}
	}
	return s
}

func injectFault(t *testing.T, name, spec string) {
	t.Helper()
	r := lvsdoctor(t, "lab", "fault", spec, "--name", name)
	if r.code != 0 || !strings.Contains(r.stdout, "injected ") {
		t.Fatalf("lab fault %s: %s", spec, r)
	}
}

// Case 2: the healthy lab checks healthy in every format.
func TestCheckHealthyLab(t *testing.T) {
	_, file := labUp(t)

	r := lvsdoctor(t, "check", "-f", file)
	if r.code != 0 {
		t.Fatalf("check on the healthy lab: want exit 0\n%s", r)
	}
	if !strings.Contains(r.stdout, "healthy · 0 findings") {
		t.Errorf("text output has no verdict line %q:\n%s", "healthy · 0 findings", r.stdout)
	}
	if strings.Contains(r.stdout, "FAIL") || strings.Contains(r.stdout, "ERROR") {
		t.Errorf("the healthy lab has failing steps:\n%s", r.stdout)
	}

	r = lvsdoctor(t, "check", "-f", file, "--format", "json")
	if r.code != 0 {
		t.Fatalf("check --format json: want exit 0\n%s", r)
	}
	res, raw := parseResult(t, []byte(r.stdout))
	if res.Verdict != "healthy" {
		t.Errorf("verdict %q, want healthy", res.Verdict)
	}
	if f := strings.TrimSpace(string(raw["findings"])); f != "[]" {
		t.Errorf(`"findings" is %s, want []`, f)
	}
	if len(res.Unchecked) != 0 {
		t.Errorf("unchecked on the healthy lab: %+v", res.Unchecked)
	}
	ids := map[string]bool{}
	for _, s := range res.Steps {
		ids[s.ID] = true
		if s.Status != "pass" {
			t.Errorf("step %s %s %s: %s (%s), want pass", s.ID, s.Host, s.Service, s.Status, s.Summary)
		}
	}
	for _, q := range []string{"Q1", "Q2", "Q3", "Q4"} {
		if !ids[q] {
			t.Errorf("no step %s in %s", q, r.stdout)
		}
	}

	// -v: every step's outcome on stderr as it lands, timestamped.
	r = lvsdoctor(t, "check", "-f", file, "-v")
	for _, want := range []string{"Q1 rs1: pass, ", "Q2 rs2: pass, ", "Q3 director tcp 203.0.113.100:80: pass, ", "Q4 rs2 udp 203.0.113.100:53: pass, "} {
		if r.code != 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("check -v: want exit 0 and %q on stderr\n%s", want, r)
		}
	}

	r = lvsdoctor(t, "check", "-f", file, "--format", "markdown")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "# lvsdoctor: healthy\n") {
		t.Errorf("check --format markdown: want exit 0 and a first line '# lvsdoctor: healthy'\n%s", r)
	}

	dir := t.TempDir()
	js, md := filepath.Join(dir, "X.json"), filepath.Join(dir, "X.md")
	r = lvsdoctor(t, "check", "-f", file, "--out", js, "--out", md)
	if r.code != 0 || !strings.Contains(r.stdout, "healthy · 0 findings") {
		t.Errorf("check --out --out: want exit 0 and the text report on stdout\n%s", r)
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatalf("--out %s: %v", js, err)
	}
	if res, _ := parseResult(t, b); res.Verdict != "healthy" {
		t.Errorf("%s: verdict %q, want healthy", js, res.Verdict)
	}
	b, err = os.ReadFile(md)
	if err != nil {
		t.Fatalf("--out %s: %v", md, err)
	}
	if !strings.HasPrefix(string(b), "# lvsdoctor: healthy\n") {
		t.Errorf("%s does not start with '# lvsdoctor: healthy':\n%s", md, b)
	}
}

// Case 3: an injected fault is named with its host, address, evidence and
// remedy, and the check exits 1.
func TestCheckFaultRSNoListener(t *testing.T) {
	name, file := labUp(t)
	injectFault(t, name, "rs-no-listener")

	r := lvsdoctor(t, "check", "-f", file)
	if r.code != 1 {
		t.Errorf("check after rs-no-listener: want exit 1\n%s", r)
	}
	if !strings.Contains(r.stdout, "✗ rs-no-listener") || !strings.Contains(r.stdout, "faulty · 1 finding") {
		t.Errorf("the text report does not name rs-no-listener with a faulty verdict:\n%s", r.stdout)
	}

	r = lvsdoctor(t, "check", "-f", file, "--format", "json")
	if r.code != 1 {
		t.Errorf("check --format json after rs-no-listener: want exit 1\n%s", r)
	}
	res, _ := parseResult(t, []byte(r.stdout))
	if res.Verdict != "faulty" {
		t.Errorf("verdict %q, want faulty", res.Verdict)
	}
	if got := res.errorFindings(); !slices.Equal(got, []string{"rs-no-listener"}) {
		t.Fatalf("error findings %v, want exactly [rs-no-listener]\n%s", got, r.stdout)
	}
	for _, f := range res.Findings {
		if f.Severity != "error" {
			continue
		}
		if f.Host != "rs1" || f.Address != "198.18.0.2:80" {
			t.Errorf("rs-no-listener on host %q address %q, want rs1 198.18.0.2:80", f.Host, f.Address)
		}
		if len(f.Evidence) == 0 || f.Evidence[0] == "" {
			t.Errorf("rs-no-listener has no evidence")
		}
		if len(f.Remedy) == 0 || f.Remedy[0] == "" {
			t.Errorf("rs-no-listener has no remedy")
		}
	}
}

// unreachableRS1 copies the lab's topology file with rs1's host replaced by
// a namespace that does not exist.
func unreachableRS1(t *testing.T, name, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	old := "host: netns:" + name + "-rs1\n"
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s has no %q:\n%s", file, old, b)
	}
	b = bytes.ReplaceAll(b, []byte(old), []byte("host: netns:does-not-exist\n"))
	out := filepath.Join(t.TempDir(), "unreachable.yaml")
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func requireRS1Unchecked(t *testing.T, res jsonResult) {
	t.Helper()
	for _, u := range res.Unchecked {
		if u.Host == "rs1" && strings.Contains(u.Why, "does-not-exist") && strings.Contains(u.Why, "namespace") {
			return
		}
	}
	t.Errorf("unchecked %+v does not name rs1 with a reason about namespace does-not-exist", res.Unchecked)
}

// Case 4: a host that cannot be reached makes the check inconclusive (3),
// the rest of the cluster is still checked, and a fault elsewhere still
// wins (1).
func TestCheckUnreachableHost(t *testing.T) {
	name, file := labUp(t)
	bad := unreachableRS1(t, name, file)

	r := lvsdoctor(t, "check", "-f", bad, "--format", "json")
	if r.code != 3 {
		t.Errorf("check with rs1 unreachable: want exit 3 (inconclusive)\n%s", r)
	}
	res, _ := parseResult(t, []byte(r.stdout))
	if res.Verdict != "inconclusive" {
		t.Errorf("verdict %q, want inconclusive", res.Verdict)
	}
	if ids := res.errorFindings(); len(ids) > 0 {
		t.Errorf("error findings %v with rs1 unreachable and nothing broken", ids)
	}
	requireRS1Unchecked(t, res)
	q1 := res.stepsOf("Q1", "rs2")
	if len(q1) == 0 || q1[0].Status != "pass" {
		t.Errorf("rs2's Q1 step %+v, want pass", q1)
	}

	r = lvsdoctor(t, "check", "-f", bad)
	if r.code != 3 || !strings.Contains(r.stdout, "inconclusive · 0 findings") ||
		!strings.Contains(r.stdout, "not checked  rs1") {
		t.Errorf("text check with rs1 unreachable: want exit 3, rs1 not checked, verdict inconclusive\n%s", r)
	}

	injectFault(t, name, "rs-no-listener@rs2")
	r = lvsdoctor(t, "check", "-f", bad, "--format", "json")
	if r.code != 1 {
		t.Errorf("check with rs1 unreachable and rs2 broken: want exit 1 (faulty wins)\n%s", r)
	}
	res, _ = parseResult(t, []byte(r.stdout))
	if res.Verdict != "faulty" {
		t.Errorf("verdict %q, want faulty", res.Verdict)
	}
	if got := res.errorFindings(); !slices.Equal(got, []string{"rs-no-listener"}) {
		t.Errorf("error findings %v, want [rs-no-listener]", got)
	}
	for _, f := range res.Findings {
		if f.ID == "rs-no-listener" && (f.Host != "rs2" || f.Address != "198.18.0.3:80") {
			t.Errorf("rs-no-listener on %s %s, want rs2 198.18.0.3:80", f.Host, f.Address)
		}
	}
	requireRS1Unchecked(t, res)
}

// asUnprivileged runs the binary as user nobody when the test is root,
// else as the (unprivileged) user running the test.
func asUnprivileged(t *testing.T, args ...string) run {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = binDir
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LVSDOCTOR_AGENT=" + bin, "HOME=/nonexistent"}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	} else if b, err := os.ReadFile("/proc/self/status"); err != nil || !strings.Contains(string(b), "CapEff:\t0000000000000000") {
		testenv.RequireRoot(t) // has capabilities but is not root: cannot drop them
	}
	return runCmd(t, cmd)
}

// Case 5: without privileges, lab up and check stop at once and say which
// capabilities they need, with no deep error behind it.
func TestWithoutPrivileges(t *testing.T) {
	name := labName()
	top := filepath.Join(binDir, "unpriv.yaml")
	yaml := fmt.Sprintf(`client:
  host: netns:%[1]s-client
director:
  host: netns:%[1]s-director
services:
  - vip: 203.0.113.100:80
    proto: tcp
    realservers:
      - address: 198.18.0.2:80
        host: netns:%[1]s-rs1
`, name)
	if err := os.WriteFile(top, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(top) })

	noDeepError := func(what string, r run) {
		t.Helper()
		if strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%s: want one line on stderr\n%s", what, r)
		}
		for _, deep := range []string{"goroutine", "panic", "netlink", "operation not permitted", "permission denied", ".go:"} {
			if strings.Contains(strings.ToLower(r.stderr), deep) {
				t.Errorf("%s: stderr shows a deep error (%q)\n%s", what, deep, r)
			}
		}
		for _, c := range []string{"CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_NET_RAW", "root"} {
			if !strings.Contains(r.stderr, c) {
				t.Errorf("%s: the message does not name %s\n%s", what, c, r)
			}
		}
	}

	start := time.Now()
	r := asUnprivileged(t, "check", "-f", top)
	if r.code != 3 {
		t.Errorf("unprivileged check: want exit 3 (inconclusive: the probes cannot run)\n%s", r)
	}
	if r.stdout != "" {
		t.Errorf("unprivileged check printed a report:\n%s", r)
	}
	noDeepError("check", r)

	out := filepath.Join(binDir, "unpriv-lab.yaml")
	r = asUnprivileged(t, "lab", "up", "--name", name, "-o", out)
	if r.code != 2 {
		t.Errorf("unprivileged lab up: want exit 2\n%s", r)
	}
	noDeepError("lab up", r)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the unprivileged runs took %s: they must fail at once", d)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("unprivileged lab up wrote %s", out)
	}
	if left := namespacesOf(t, name); len(left) > 0 {
		t.Errorf("unprivileged lab up left namespaces %v", left)
	}
}

// Case 7 (the half that needs root; the list is in testdata/script): an
// unknown fault id is a usage error naming the valid ids.
func TestLabFaultUnknownID(t *testing.T) {
	name, _ := labUp(t)
	r := lvsdoctor(t, "lab", "fault", "nonsense", "--name", name)
	if r.code != 2 {
		t.Errorf("lab fault nonsense: want exit 2\n%s", r)
	}
	if r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, `unknown fault "nonsense"`) {
		t.Errorf("lab fault nonsense: want one line naming the unknown id\n%s", r)
	}
	for _, id := range []string{"director-firewall-drops-replies", "director-no-forwarding", "director-no-masquerade",
		"director-rpfilter-requests", "rs-no-listener", "rs-wrong-gateway"} {
		if !strings.Contains(r.stderr, id) {
			t.Errorf("lab fault nonsense does not name the valid id %s\n%s", id, r)
		}
	}
	// and the lab is untouched: still healthy
	if r := lvsdoctor(t, "lab", "check", "--name", name, "-q"); r.code != 0 {
		t.Errorf("the lab is not healthy after a refused fault:\n%s", r)
	}
}

// agentsLeft lists the processes of the built binary that run "agent".
func agentsLeft() []string {
	var left []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		exe, err := os.Readlink(p + "/exe")
		if err != nil || strings.TrimSuffix(exe, " (deleted)") != bin {
			continue
		}
		b, err := os.ReadFile(p + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if slices.Contains(args, "agent") {
			left = append(left, fmt.Sprintf("%s: %s", filepath.Base(p), strings.Join(args, " ")))
		}
	}
	return left
}

// Case 8: Ctrl-C during a check stops it within 3 s with exit 3 and leaves
// no agent running.
func TestCheckInterrupt(t *testing.T) {
	name, file := labUp(t)
	// director-no-forwarding makes the check wait for answers that never
	// come (about a second), so it is surely running when Ctrl-C comes.
	injectFault(t, name, "director-no-forwarding")

	cmd := exec.Command(bin, "check", "-f", file)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	time.Sleep(300 * time.Millisecond)
	// Agents must be running now, or the test proves nothing about them.
	running := agentsLeft()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatalf("SIGINT: %v (the check ended before 300 ms?)", err)
	}
	sent := time.Now()
	var err error
	select {
	case err = <-done:
	case <-time.After(3 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("check still running 3 s after SIGINT\n--- stdout\n%s--- stderr\n%s", &stdout, &stderr)
	}
	t.Logf("exited %s after SIGINT: %v\n--- stdout\n%s--- stderr\n%s", time.Since(sent), err, &stdout, &stderr)
	if len(running) == 0 {
		t.Errorf("no agent was running 300 ms into the check: the interrupt did not test their teardown")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("check after SIGINT: %v, want exit 3", err)
	}
	if !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("stderr does not say the check was interrupted:\n%s", &stderr)
	}
	// The agents die with the controller; give the kernel a moment to reap.
	var left []string
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if left = agentsLeft(); len(left) == 0 {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("agents left running after the interrupted check: %v", left)
	}
}

// Case 9: lab down leaves no namespace of the lab, and running it again is
// harmless.
func TestLabDown(t *testing.T) {
	testenv.RequireRoot(t)
	name := labName()
	file := filepath.Join(t.TempDir(), "lab.yaml")
	t.Cleanup(func() { lvsdoctor(t, "lab", "down", "--name", name) })
	if r := lvsdoctor(t, "lab", "up", "--name", name, "-o", file); r.code != 0 {
		t.Fatalf("lab up: %s", r)
	}
	if ns := namespacesOf(t, name); len(ns) == 0 {
		t.Fatalf("lab up created no namespace named %s*", name)
	}
	injectFault(t, name, "rs-wrong-gateway")

	r := lvsdoctor(t, "lab", "down", "--name", name)
	if r.code != 0 || !strings.Contains(r.stdout, "lab "+name+" removed") {
		t.Errorf("lab down: want exit 0 and 'lab %s removed'\n%s", name, r)
	}
	if left := namespacesOf(t, name); len(left) > 0 {
		t.Errorf("lab down left %v", left)
	}
	if _, err := os.Stat(filepath.Join("/run/lvsdoctor/labs", name)); !os.IsNotExist(err) {
		t.Errorf("lab down left its state directory (%v)", err)
	}
	r = lvsdoctor(t, "lab", "down", "--name", name)
	if r.code != 0 || !strings.Contains(r.stdout, "nothing to remove") {
		t.Errorf("second lab down: want exit 0 and 'nothing to remove'\n%s", r)
	}
	r = lvsdoctor(t, "check", "-f", file)
	if r.code != 3 || !strings.Contains(r.stdout, "does not exist") {
		t.Errorf("check on a removed lab: want exit 3 naming the missing namespaces\n%s", r)
	}
}
