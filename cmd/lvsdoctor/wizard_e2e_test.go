package main

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
)

// tmuxTerm is a wizard running in an 80×24 tmux window on a private tmux
// server (its own socket: the user's tmux is never touched).
type tmuxTerm struct {
	t      *testing.T
	tmux   string
	socket string
}

func (m *tmuxTerm) cmd(args ...string) string {
	m.t.Helper()
	out, err := exec.Command(m.tmux, append([]string{"-L", m.socket}, args...)...).CombinedOutput()
	if err != nil {
		m.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (m *tmuxTerm) screen() string { return m.cmd("capture-pane", "-p", "-t", "w") }

// keys types text literally, then presses the named keys.
func (m *tmuxTerm) keys(text string, named ...string) {
	m.t.Helper()
	if text != "" {
		m.cmd("send-keys", "-t", "w", "-l", text)
	}
	for _, k := range named {
		m.cmd("send-keys", "-t", "w", k)
	}
}

// waitFor returns the screen once it shows every one of subs.
func (m *tmuxTerm) waitFor(d time.Duration, subs ...string) string {
	m.t.Helper()
	deadline := time.Now().Add(d)
	var s string
	for time.Now().Before(deadline) {
		s = m.screen()
		ok := true
		for _, sub := range subs {
			ok = ok && strings.Contains(s, sub)
		}
		if ok {
			return s
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.t.Fatalf("the wizard never showed %q; the screen:\n%s", subs, s)
	return ""
}

// TestWizardEndToEnd drives `lvsdoctor wizard` in tmux from an empty start
// against a lab with rs-no-listener: it answers the questions with the
// lab's hosts, saves the topology, runs the check, sees the fault, opens
// it, and exports the markdown report.
func TestWizardEndToEnd(t *testing.T) {
	testenv.RequireRoot(t)
	tmux := testenv.RequireCommand(t, "tmux", "tmux")
	b := make([]byte, 3)
	rand.Read(b)
	name := "lvsdw" + hex.EncodeToString(b)
	dir := t.TempDir()
	t.Cleanup(func() { labDown(t, name) })
	if r := lvsdoctor(t, "lab", "up", "--name", name, "-o", filepath.Join(dir, "lab.yaml")); r.code != 0 {
		t.Fatalf("lab up: %s", r)
	}
	if r := lvsdoctor(t, "lab", "fault", "rs-no-listener", "--name", name); r.code != 0 {
		t.Fatalf("lab fault: %s", r)
	}

	term := &tmuxTerm{t: t, tmux: tmux, socket: name}
	t.Cleanup(func() { exec.Command(tmux, "-L", name, "kill-server").Run() })
	term.cmd("new-session", "-d", "-s", "w", "-x", "80", "-y", "24", "-c", dir,
		"env LVSDOCTOR_AGENT="+bin+" NO_COLOR=1 "+bin+" wizard; echo wizard-exit=$?; sleep 120")
	term.cmd("set-option", "-t", "w", "remain-on-exit", "on")

	host := func(role string) string { return "netns:" + name + "-" + role }
	steps := []struct{ question, answer string }{
		{"The director: how to reach it", host("director")},
		{"VIP:PORT", "203.0.113.100:80"},
		{"Its protocol: tcp or udp", "tcp"},
		{"Real server 1: its address", "198.18.0.2:80"},
		{"Real server 1: how to reach it", host("rs1")},
		{"Another real server?", "y"},
		{"Real server 2: its address", "198.18.0.3"},
		{"Real server 2: how to reach it", host("rs2")},
		{"Another real server?", "n"},
		{"The client: how to reach it", host("client")},
		{"The client's address", "203.0.113.10"},
		{"Save the topology to", ""}, // the default, lvsdoctor.yaml
	}
	for _, s := range steps {
		term.waitFor(10*time.Second, s.question)
		term.keys(s.answer)
		if s.answer != "" {
			term.waitFor(10*time.Second, "> "+s.answer, "✓")
		}
		term.keys("", "Enter")
	}

	// Live progress: while the check still runs, a step's row already
	// shows its outcome (Q.1's ping returns long before the traceroutes
	// and the captures end).
	var live string
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s := term.screen()
		if strings.Contains(s, "Findings") {
			break
		}
		if strings.Contains(s, "· checking") && landedRow.MatchString(s) {
			live = s
			break
		}
	}
	if live == "" {
		t.Errorf("no step row showed ok or FAIL while the check ran; the screen:\n%s", term.screen())
	} else {
		t.Logf("checking:\n%s", live)
	}

	results := term.waitFor(90*time.Second, "Findings", "rs-no-listener", "faulty")
	t.Logf("results:\n%s", results)
	// NO_COLOR: the terminal got no colour, only attributes (reverse
	// video for the selection).
	if raw := term.cmd("capture-pane", "-p", "-e", "-t", "w"); colorSGR(raw) {
		t.Errorf("colour on the screen under NO_COLOR:\n%q", raw)
	}
	saved := filepath.Join(dir, "lvsdoctor.yaml")
	top, err := topology.Load(saved)
	if err != nil {
		t.Fatalf("the saved topology: %v", err)
	}
	if rs := top.Services[0].RealServers; len(rs) != 2 || rs[1].Address != "198.18.0.3:80" || rs[1].Host != host("rs2") {
		t.Errorf("saved real servers: %+v", rs)
	}

	term.keys("", "Enter")
	finding := term.waitFor(10*time.Second, "finding 1 of", "evidence", "remedy", "journey")
	t.Logf("finding:\n%s", finding)
	term.keys("m")
	term.waitFor(10*time.Second, "markdown report written to")
	reports, _ := filepath.Glob(filepath.Join(dir, "lvsdoctor-report-*.md"))
	if len(reports) != 1 {
		t.Fatalf("markdown reports in %s: %v", dir, reports)
	}
	md, err := os.ReadFile(reports[0])
	if err != nil || !strings.Contains(string(md), "rs-no-listener") {
		t.Errorf("markdown report %s: %v\n%s", reports[0], err, md)
	}
	term.keys("q")
	term.waitFor(20*time.Second, "wizard-exit=1")
}

// TestWizardInterrupt: Ctrl-C while the wizard's check runs stops it,
// closes the agents and ends the wizard (exit 3: no verdict).
func TestWizardInterrupt(t *testing.T) {
	testenv.RequireRoot(t)
	tmux := testenv.RequireCommand(t, "tmux", "tmux")
	b := make([]byte, 3)
	rand.Read(b)
	name := "lvsdw" + hex.EncodeToString(b)
	dir := t.TempDir()
	file := filepath.Join(dir, "lab.yaml")
	t.Cleanup(func() { labDown(t, name) })
	if r := lvsdoctor(t, "lab", "up", "--name", name, "-o", file); r.code != 0 {
		t.Fatalf("lab up: %s", r)
	}
	// The check then waits for answers that never come: it is surely
	// running when Ctrl-C comes.
	if r := lvsdoctor(t, "lab", "fault", "director-no-forwarding", "--name", name); r.code != 0 {
		t.Fatalf("lab fault: %s", r)
	}
	term := &tmuxTerm{t: t, tmux: tmux, socket: name}
	t.Cleanup(func() { exec.Command(tmux, "-L", name, "kill-server").Run() })
	term.cmd("new-session", "-d", "-s", "w", "-x", "80", "-y", "24", "-c", dir,
		"env LVSDOCTOR_AGENT="+bin+" "+bin+" wizard --timeout 5s -f "+file+"; echo wizard-exit=$?; sleep 120")
	term.waitFor(10*time.Second, "checking", "Q.4")
	var running []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && len(running) == 0; time.Sleep(20 * time.Millisecond) {
		running = agentsLeft()
	}
	if len(running) == 0 {
		t.Fatalf("no agent running during the check; screen:\n%s", term.screen())
	}
	// The test connections wait for answers that never come: their
	// steps' rows show the spinner meanwhile.
	var spinning string
	for deadline := time.Now().Add(4 * time.Second); time.Now().Before(deadline) && spinning == ""; time.Sleep(20 * time.Millisecond) {
		if s := term.screen(); spinnerRow.MatchString(s) {
			spinning = s
		}
	}
	if spinning == "" {
		t.Errorf("no step row with a spinner while the check ran; the screen:\n%s", term.screen())
	}
	term.keys("", "C-c")
	term.waitFor(5*time.Second, "wizard-exit=3")
	var left []string
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if left = agentsLeft(); len(left) == 0 {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("agents left running after Ctrl-C: %v", left)
	}
}

var sgrRE = regexp.MustCompile("\x1b\\[([0-9;:]*)m")

// landedRow is a step row of the check screen with its outcome,
// spinnerRow one still running (bubbles' Line spinner).
var (
	landedRow  = regexp.MustCompile(`(?m)^\s+(ok|FAIL)\s+Q\.[1-4]\s`)
	spinnerRow = regexp.MustCompile(`(?m)^\s+[|/\-\\]\s+Q\.[1-4]\s`)
)

// colorSGR tells whether s sets a foreground or background colour.
func colorSGR(s string) bool {
	for _, m := range sgrRE.FindAllStringSubmatch(s, -1) {
		for _, p := range strings.FieldsFunc(m[1], func(r rune) bool { return r == ';' || r == ':' }) {
			if n, err := strconv.Atoi(p); err == nil && (n >= 30 && n <= 38 || n >= 40 && n <= 48 || n >= 90 && n <= 97 || n >= 100 && n <= 107) {
				return true
			}
		}
	}
	return false
}
