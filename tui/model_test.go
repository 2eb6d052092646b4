package tui

// Tests of the wizard's model driven through a real bubbletea program with
// teatest, a fake check runner that returns a recorded result (a fixture's
// observations judged again), and no root.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/lvsdoctor/lvsdoctor/checks"
	"github.com/lvsdoctor/lvsdoctor/checks/classify"
	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
)

// fixture replays fixtures/NAME/observations.json into a result.
func fixture(t *testing.T, name string) (*result.Result, *topology.Topology) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "fixtures", name, "observations.json"))
	if err != nil {
		t.Fatal(err)
	}
	var in classify.Input
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	top := *in.Topology
	r := checks.Judge(&in, false)
	r.DurationMS = 1234
	return r, &top
}

// screens records what the model draws, so a test can wait for a screen.
type screens struct {
	mu   sync.Mutex
	last string
}

func (s *screens) hook(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = ansi.Strip(v)
}

func (s *screens) current() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// wait returns the first screen, from now on, for which ok holds.
func (s *screens) wait(t *testing.T, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if v := s.current(); ok(v) {
			return v
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no screen with %s; the last:\n%s", what, s.current())
	return ""
}

func (s *screens) waitFor(t *testing.T, subs ...string) string {
	t.Helper()
	return s.wait(t, strings.Join(subs, ", "), func(v string) bool {
		for _, sub := range subs {
			if !strings.Contains(v, sub) {
				return false
			}
		}
		return true
	})
}

func key(code rune) tea.KeyPressMsg { return tea.KeyPressMsg{Code: code} }

var (
	enter = key(tea.KeyEnter)
	esc   = key(tea.KeyEscape)
	down  = key(tea.KeyDown)
	ctrlC = tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
)

type fakeRunner struct {
	r     *result.Result
	calls atomic.Int32
	tops  chan *topology.Topology
}

func (f *fakeRunner) run(_ context.Context, top *topology.Topology, progress func(string), step func(checks.Event)) (*result.Result, error) {
	f.calls.Add(1)
	if f.tops != nil {
		f.tops <- top
	}
	for _, e := range checks.Plan(top) {
		step(e)
	}
	progress("reaching 3 hosts")
	progress("classifying")
	finals(f.r, step)
	return f.r, nil
}

// finals sends the final events of a result, as checks.Run does last.
func finals(r *result.Result, step func(checks.Event)) {
	for _, s := range r.Steps {
		step(checks.Event{Step: s.ID, Host: s.Host, Service: s.Service, State: checks.State(s.Status), Summary: s.Summary, Final: true})
	}
}

func start(t *testing.T, cfg Config, opts ...teatest.TestOption) (*teatest.TestModel, *screens, *Model) {
	t.Helper()
	m := New(cfg)
	s := &screens{}
	m.viewHook = s.hook
	tm := teatest.NewTestModel(t, m, append([]teatest.TestOption{teatest.WithInitialTermSize(80, 24)}, opts...)...)
	t.Cleanup(func() { tm.Quit(); m.Shutdown() })
	return tm, s, m
}

func finish(t *testing.T, tm *teatest.TestModel) {
	t.Helper()
	tm.WaitFinished(t, teatest.WithFinalTimeout(5*time.Second))
}

// TestQuestions builds a topology from an empty start: wrong answers are
// refused as they are typed, several real servers are added, the file is
// saved in DESIGN.md's format and re-read, and the check runs on it.
func TestQuestions(t *testing.T) {
	r, _ := fixture(t, "rs-no-listener")
	dir := t.TempDir()
	save := filepath.Join(dir, "cluster.yaml")
	f := &fakeRunner{r: r, tops: make(chan *topology.Topology, 1)}
	tm, s, _ := start(t, Config{SavePath: save, Run: f.run, ReportDir: dir})

	s.waitFor(t, "The director: how to reach it")
	tm.Type("netns:lvs dir")
	s.waitFor(t, "✗", "netns name is a plain name")
	tm.Send(enter) // refused: still the same question
	for range len("lvs dir") {
		tm.Send(key(tea.KeyBackspace))
	}
	tm.Type("lvs-director")
	s.waitFor(t, "> netns:lvs-director", "✓")
	tm.Send(enter)

	s.waitFor(t, "VIP:PORT")
	tm.Type("203.0.113.100")
	s.waitFor(t, "✗ no port")
	tm.Type(":80")
	s.waitFor(t, "✓")
	tm.Send(enter)
	s.waitFor(t, "tcp or udp")
	tm.Send(enter) // default tcp

	answers := []struct{ want, typed string }{
		{"Real server 1: its address", "198.18.0.2"},
		{"Real server 1: how to reach it", "netns:lvs-rs1"},
		{"Another real server?", "y"},
		{"Real server 2: its address", "198.18.0.3:80"},
		{"Real server 2: how to reach it", "netns:lvs-rs2"},
		{"Another real server?", ""},
		{"The client: how to reach it", "netns:lvs-client"},
		{"The client's address", "203.0.113.10"},
	}
	for _, a := range answers {
		s.waitFor(t, a.want)
		tm.Type(a.typed)
		if a.typed != "" {
			s.waitFor(t, "> "+a.typed)
		}
		tm.Send(enter)
	}
	v := s.waitFor(t, "Save the topology to")
	for _, want := range []string{"rs1        198.18.0.2:80  netns:lvs-rs1", "rs2        198.18.0.3:80  netns:lvs-rs2", "client     netns:lvs-client 203.0.113.10"} {
		if !strings.Contains(v, want) {
			t.Errorf("the answers so far lack %q:\n%s", want, v)
		}
	}
	// esc goes back, with the answer given ready to edit, and forgets
	// what it gave.
	tm.Send(esc)
	s.waitFor(t, "The client's address", "> 203.0.113.10")
	tm.Send(esc)
	v = s.waitFor(t, "The client: how to reach it", "> netns:lvs-client")
	if strings.Contains(v, "client     netns") {
		t.Errorf("back at the client's question, its answer is still in the summary:\n%s", v)
	}
	tm.Send(enter)
	s.waitFor(t, "The client's address")
	tm.Type("203.0.113.10")
	s.waitFor(t, "> 203.0.113.10")
	tm.Send(enter)
	s.waitFor(t, "Save the topology to", "client     netns:lvs-client 203.0.113.10")
	tm.Send(enter) // default: SavePath

	var top *topology.Topology
	select {
	case top = <-f.tops:
	case <-time.After(5 * time.Second):
		t.Fatalf("the check did not start; screen:\n%s", s.current())
	}
	s.waitFor(t, "faulty", "rs-no-listener")
	back, err := topology.Load(save)
	if err != nil {
		t.Fatalf("the saved topology does not load: %v", err)
	}
	if len(back.Services) != 1 || len(back.Services[0].RealServers) != 2 || back.Client.Address != "203.0.113.10" ||
		back.Director.Host != "netns:lvs-director" || back.Services[0].RealServers[0].Address != "198.18.0.2:80" {
		t.Errorf("saved topology: %+v", back)
	}
	if top.Services[0].String() != back.Services[0].String() || top.Services[0].RealServers[1].Host != "netns:lvs-rs2" {
		t.Errorf("the check ran on %+v, not the saved file", top)
	}
	tm.Send(key('q'))
	finish(t, tm)
}

// TestFindings: most severe first, selection, the finding view with its
// evidence, answer, remedy and journey ladder, back, re-run, markdown
// export, quit.
func TestFindings(t *testing.T) {
	r, top := fixture(t, "two-rs-no-listener@rs1+rs-wrong-gateway@rs2")
	// A warning first in the classifier's order must still come after the
	// errors.
	r.Findings = append([]result.Finding{{ID: "zz-warning", Severity: result.SevWarning, Host: "rs2", Summary: "a warning"}}, r.Findings...)
	dir := t.TempDir()
	f := &fakeRunner{r: r}
	now := time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC)
	tm, s, _ := start(t, Config{Topology: top, Run: f.run, ReportDir: dir, Now: func() time.Time { return now }})

	v := s.waitFor(t, "faulty", "Findings")
	lines := strings.Split(v, "\n")
	var order []string
	for _, l := range lines {
		for _, id := range []string{"rs-no-listener", "rs-wrong-gateway", "zz-warning"} {
			if strings.Contains(l, " "+id+"  ") {
				order = append(order, id)
			}
		}
	}
	if len(order) != 3 || order[2] != "zz-warning" {
		t.Errorf("findings order %v, want the warning last:\n%s", order, v)
	}
	if !strings.Contains(v, "▸ ✗ "+order[0]) {
		t.Errorf("the first finding is not selected:\n%s", v)
	}
	tm.Send(down)
	s.waitFor(t, "▸ ✗ "+order[1])
	tm.Send(enter)
	fv := s.waitFor(t, "finding 2 of 3", order[1], "evidence", "remedy", "HOWTO Q.", "journey", "client   director rs")
	if !regexp.MustCompile(`●─+▶│`).MatchString(fv) {
		t.Errorf("no ladder rung from a column to the next:\n%s", fv)
	}
	tm.Send(key('n'))
	s.waitFor(t, "finding 3 of 3", "zz-warning")
	tm.Send(esc)
	s.waitFor(t, "▸ ! zz-warning")

	tm.Send(key('m'))
	v = s.waitFor(t, "markdown report written to")
	path := filepath.Join(dir, "lvsdoctor-report-20261128-030000.md")
	if !strings.Contains(v, path) {
		t.Errorf("the screen does not show %s:\n%s", path, v)
	}
	md, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(md), "rs-no-listener") || !strings.Contains(string(md), "rs-wrong-gateway") {
		t.Errorf("markdown report %s: %v\n%s", path, err, md)
	}

	tm.Send(key('r'))
	s.wait(t, "a second run", func(string) bool { return f.calls.Load() == 2 })
	s.waitFor(t, "faulty", "Findings")
	tm.Send(key('q'))
	finish(t, tm)
}

// TestResize: every screen fits the window it is given, and follows when
// the window changes.
func TestResize(t *testing.T) {
	r, top := fixture(t, "two-rs-no-listener@rs1+rs-wrong-gateway@rs2")
	f := &fakeRunner{r: r}
	tm, s, _ := start(t, Config{Topology: top, Run: f.run})
	fits := func(w, h int) func(string) bool {
		return func(v string) bool {
			lines := strings.Split(v, "\n")
			if len(lines) > h {
				return false
			}
			for _, l := range lines {
				if lipgloss.Width(l) > w {
					return false
				}
			}
			return true
		}
	}
	v := s.waitFor(t, "Findings", "q quit")
	if !fits(80, 24)(v) {
		t.Errorf("the results do not fit 80×24:\n%s", v)
	}
	tm.Send(enter)
	v = s.waitFor(t, "finding 1 of 2", "esc back")
	if !fits(80, 24)(v) {
		t.Errorf("the finding does not fit 80×24:\n%s", v)
	}
	tm.Send(tea.WindowSizeMsg{Width: 50, Height: 12})
	v = s.wait(t, "a 50×12 screen", func(v string) bool { return strings.Contains(v, "finding 1") && fits(50, 12)(v) })
	if !strings.Contains(v, "lines 1-") {
		t.Errorf("a long finding in 12 lines says nothing about scrolling:\n%s", v)
	}
	for range 100 {
		tm.Send(down)
	}
	end := regexp.MustCompile(`lines \d+-(\d+) of (\d+)`)
	s.wait(t, "the end of the finding", func(v string) bool {
		m := end.FindStringSubmatch(v)
		return m != nil && m[1] == m[2] && fits(50, 12)(v)
	})
	tm.Send(tea.WindowSizeMsg{Width: 120, Height: 40})
	s.wait(t, "a 120×40 screen", func(v string) bool { return fits(120, 40)(v) && len(strings.Split(v, "\n")) > 24 })
	tm.Send(esc)
	s.waitFor(t, "Findings")
	tm.Send(tea.WindowSizeMsg{Width: 80, Height: 24})
	s.wait(t, "80×24 again", fits(80, 24))
	tm.Send(key('q'))
	finish(t, tm)
}

// colorSGR finds colour in SGR sequences: foreground, background, 256 and
// true colour.
var sgr = regexp.MustCompile("\x1b\\[([0-9;:]*)m")

func hasColor(b []byte) bool {
	for _, m := range sgr.FindAllSubmatch(b, -1) {
		for _, p := range strings.FieldsFunc(string(m[1]), func(r rune) bool { return r == ';' || r == ':' }) {
			switch {
			case len(p) == 2 && (p[0] == '3' || p[0] == '4' || p[0] == '9') && p[1] != '9',
				len(p) == 3 && p[:2] == "10":
				return true
			}
		}
	}
	return false
}

// TestNoColor: under NO_COLOR the wizard draws no colour even on a
// terminal that has it; without, it does (the control).
func TestNoColor(t *testing.T) {
	r, top := fixture(t, "rs-wrong-gateway")
	for _, noColor := range []bool{false, true} {
		f := &fakeRunner{r: r}
		tm, s, _ := start(t, Config{Topology: top, Run: f.run, NoColor: noColor},
			teatest.WithProgramOptions(tea.WithColorProfile(colorprofile.TrueColor)))
		s.waitFor(t, "Findings")
		tm.Send(enter)
		s.waitFor(t, "evidence")
		tm.Send(key('q'))
		out, err := io.ReadAll(tm.FinalOutput(t, teatest.WithFinalTimeout(5*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		if got := hasColor(out); got == noColor {
			t.Errorf("NoColor %v: colour in the output %v", noColor, got)
		}
	}
}

// TestCtrlC: Ctrl-C during the check cancels its context and quits only
// after the runner returned (its agents closed); before a check, it quits
// at once.
func TestCtrlC(t *testing.T) {
	_, top := fixture(t, "healthy")
	var cancelled, closed atomic.Bool
	started := make(chan struct{})
	run := func(ctx context.Context, top *topology.Topology, progress func(string), step func(checks.Event)) (*result.Result, error) {
		for _, e := range checks.Plan(top) {
			step(e)
		}
		progress("reaching 4 hosts")
		close(started)
		<-ctx.Done()
		cancelled.Store(true)
		time.Sleep(100 * time.Millisecond) // closing the agents
		closed.Store(true)
		return nil, ctx.Err()
	}
	tm, s, _ := start(t, Config{Topology: top, Run: run})
	<-started
	s.waitFor(t, "reaching 4 hosts", "Q.4")
	tm.Send(ctrlC)
	finish(t, tm)
	if !cancelled.Load() || !closed.Load() {
		t.Errorf("the program ended before the check was cancelled (%v) and closed (%v)", cancelled.Load(), closed.Load())
	}

	tm, s, _ = start(t, Config{SavePath: filepath.Join(t.TempDir(), "x.yaml"), Run: run})
	s.waitFor(t, "The director")
	tm.Send(ctrlC)
	finish(t, tm)
}

// TestManyFindings: more findings and unchecked steps than lines; the list
// follows the selection and the keys stay on screen.
func TestManyFindings(t *testing.T) {
	r, top := fixture(t, "rs-no-listener")
	base := r.Findings[0]
	r.Findings = nil
	for i := range 30 {
		f := base
		f.ID = fmt.Sprintf("finding-%02d", i+1)
		r.Findings = append(r.Findings, f)
	}
	for i := range 10 {
		r.Unchecked = append(r.Unchecked, result.Unchecked{Host: "rs1", What: fmt.Sprintf("Q.4 #%d", i), Why: "no answer"})
	}
	f := &fakeRunner{r: r}
	tm, s, _ := start(t, Config{Topology: top, Run: f.run})
	fits := func(v string) bool {
		lines := strings.Split(v, "\n")
		for _, l := range lines {
			if lipgloss.Width(l) > 80 {
				return false
			}
		}
		return len(lines) <= 24 && strings.Contains(lines[len(lines)-1], "q quit")
	}
	v := s.waitFor(t, "▸ ✗ finding-01", "10 unchecked")
	if !fits(v) {
		t.Errorf("does not fit 80×24 with its keys:\n%s", v)
	}
	for range 29 {
		tm.Send(down)
	}
	v = s.waitFor(t, "▸ ✗ finding-30")
	if !fits(v) {
		t.Errorf("does not fit 80×24 with its keys:\n%s", v)
	}
	tm.Send(key('q'))
	finish(t, tm)
}

// stepMark finds the row of step id on host (and service) on a check
// screen and returns its first column: "·" waiting, a spinner frame,
// or ok, FAIL, ERR, skip.
func stepMark(screen, id, host, service string) (string, bool) {
	for _, l := range strings.Split(screen, "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || f[1] != stepName(id) || f[2] != host {
			continue
		}
		if service != "" && !strings.HasPrefix(strings.Join(f[3:], " "), service+" ") {
			continue
		}
		return f[0], true
	}
	return "", false
}

func isSpinner(mark string) bool { return len(mark) == 1 && strings.Contains(`|/-\`, mark) }

func statusWord(st result.Status) string {
	switch st {
	case result.Pass:
		return "ok"
	case result.Fail:
		return "FAIL"
	case result.Error:
		return "ERR"
	}
	return "skip"
}

// stepper is a runner that plays a check's events one at a time, each when
// the test asks for it.
type stepper struct {
	next chan checks.Event
	done chan struct{}
	r    *result.Result
}

func (s *stepper) run(ctx context.Context, top *topology.Topology, progress func(string), step func(checks.Event)) (*result.Result, error) {
	progress("Q.1-Q.4: pings, traceroutes and route lookups on the real servers; test connections from the client")
	for {
		select {
		case e := <-s.next:
			step(e)
		case <-s.done:
			return s.r, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// TestStepProgress: the check screen has a row per step and host from the
// plan, each waiting; a row shows the spinner when its step runs and its
// outcome as soon as that lands, one by one, the others unchanged; the
// final outcomes win over provisional ones; then the results. All without
// colour under NoColor.
func TestStepProgress(t *testing.T) {
	r, top := fixture(t, "rs-wrong-gateway")
	st := &stepper{next: make(chan checks.Event), done: make(chan struct{}), r: r}
	// NO_COLOR on a terminal that has colour: the marks alone must tell.
	tm, s, _ := start(t, Config{Topology: top, Run: st.run, NoColor: true},
		teatest.WithProgramOptions(tea.WithColorProfile(colorprofile.TrueColor)))
	plan := checks.Plan(top)
	if len(plan) != len(r.Steps) {
		t.Fatalf("plan of %d steps for a result of %d", len(plan), len(r.Steps))
	}
	send := func(e checks.Event) {
		select {
		case st.next <- e:
		case <-time.After(5 * time.Second):
			t.Fatalf("the runner does not take events; screen:\n%s", s.current())
		}
	}
	for _, e := range plan {
		send(e)
	}
	// marks is the first column of every planned row, "" where a row is
	// missing.
	marks := func(v string) []string {
		out := make([]string, len(plan))
		for i, e := range plan {
			out[i], _ = stepMark(v, e.Step, e.Host, e.Service)
		}
		return out
	}
	v := s.wait(t, "every step waiting", func(v string) bool {
		for _, m := range marks(v) {
			if m != "·" {
				return false
			}
		}
		return true
	})
	t.Logf("planned:\n%s", v)

	// Provisional outcomes: those of the result, except the first step's,
	// which the final outcome must then overrule.
	prov := make([]result.Status, len(r.Steps))
	for i, rs := range r.Steps {
		prov[i] = rs.Status
	}
	if prov[0] == result.Pass {
		prov[0] = result.Fail
	} else {
		prov[0] = result.Pass
	}
	for i, e := range plan {
		running := e
		running.State, running.Summary = checks.StateRunning, "running "+e.Step
		send(running)
		s.wait(t, fmt.Sprintf("step %d (%s %s %s) running, the rest unchanged", i, e.Step, e.Host, e.Service), func(v string) bool {
			ms := marks(v)
			for j, m := range ms {
				switch {
				case j < i && m != statusWord(prov[j]),
					j == i && !isSpinner(m),
					j > i && m != "·":
					return false
				}
			}
			return true
		})
		landed := e
		landed.State, landed.Summary = checks.State(prov[i]), "provisional "+string(prov[i])
		send(landed)
		s.wait(t, fmt.Sprintf("step %d landed %s", i, prov[i]), func(v string) bool {
			m := marks(v)
			return m[i] == statusWord(prov[i]) && (i+1 == len(m) || m[i+1] == "·")
		})
	}
	for _, rs := range r.Steps {
		send(checks.Event{Step: rs.ID, Host: rs.Host, Service: rs.Service, State: checks.State(rs.Status), Summary: rs.Summary, Final: true})
	}
	v = s.wait(t, "the final outcomes", func(v string) bool {
		m := marks(v)
		for i, rs := range r.Steps {
			if m[i] != statusWord(rs.Status) {
				return false
			}
		}
		return true
	})
	t.Logf("final:\n%s", v)
	if !strings.Contains(v, r.Steps[0].Summary[:min(30, len(r.Steps[0].Summary))]) {
		t.Errorf("the first row does not show its final summary %q:\n%s", r.Steps[0].Summary, v)
	}
	close(st.done)
	s.waitFor(t, "faulty", "Findings")
	tm.Send(key('q'))
	out, err := io.ReadAll(tm.FinalOutput(t, teatest.WithFinalTimeout(5*time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	if hasColor(out) {
		t.Errorf("colour in the output under NoColor")
	}
}

// TestStepProgressMany: fifty real servers make 151 step rows; the check
// screen still fits 80×24, with a line per HOWTO step that counts the
// outcomes and names the failures, and a window of rows that scrolls.
func TestStepProgressMany(t *testing.T) {
	var y strings.Builder
	y.WriteString("client: {host: netns:c, address: 203.0.113.10}\ndirector: {host: netns:d}\nservices:\n  - vip: 203.0.113.100:80\n    proto: tcp\n    realservers:\n")
	for i := range 50 {
		fmt.Fprintf(&y, "      - {address: 198.18.0.%d:80, name: rs%d, host: netns:rs%d}\n", i+2, i+1, i+1)
	}
	top, err := topology.Parse("many.yaml", []byte(y.String()))
	if err != nil {
		t.Fatal(err)
	}
	st := &stepper{next: make(chan checks.Event), done: make(chan struct{}), r: &result.Result{Verdict: result.Healthy}}
	tm, s, _ := start(t, Config{Topology: top, Run: st.run})
	plan := checks.Plan(top)
	if len(plan) != 151 {
		t.Fatalf("%d steps planned for 50 real servers and one service, want 151", len(plan))
	}
	for _, e := range plan {
		st.next <- e
	}
	for _, e := range plan {
		if e.Step != "Q1" {
			continue
		}
		e.State = checks.StatePass
		if e.Host == "rs7" {
			e.State = checks.StateFail
		}
		st.next <- e
	}
	for _, e := range plan[50:60] {
		e.State = checks.StateRunning
		st.next <- e
	}
	fits := func(v string) bool {
		lines := strings.Split(v, "\n")
		for _, l := range lines {
			if lipgloss.Width(l) > 80 {
				return false
			}
		}
		return len(lines) <= 24 && strings.Contains(lines[len(lines)-1], "ctrl+c stop")
	}
	v := s.waitFor(t, "Q.1  50 steps: 1 FAIL, 49 ok · FAIL/ERR: rs7", "Q.2  50 steps: 10 running, 40 waiting",
		"Q.3  1 step: 1 waiting", "Q.4  50 steps: 50 waiting", "steps 1-")
	t.Logf("fifty real servers:\n%s", v)
	if !fits(v) {
		t.Errorf("does not fit 80×24 with its keys:\n%s", v)
	}
	if m, ok := stepMark(v, "Q1", "rs7", ""); !ok || m != "FAIL" {
		t.Errorf("rs7's Q.1 row shows %q (found %v), want FAIL:\n%s", m, ok, v)
	}
	tm.Send(key(tea.KeyEnd))
	v = s.waitFor(t, "of 151", "Q.4  rs50")
	if !fits(v) || !strings.Contains(v, "151 of 151") {
		t.Errorf("at the end of the list:\n%s", v)
	}
	tm.Send(key(tea.KeyPgUp))
	s.wait(t, "a page up", func(v string) bool { return !strings.Contains(v, "151 of 151") && strings.Contains(v, "of 151") })
	tm.Send(key(tea.KeyHome))
	s.waitFor(t, "steps 1-", "Q.1  rs1 ")
	tm.Send(tea.WindowSizeMsg{Width: 80, Height: 60})
	s.wait(t, "a taller window", func(v string) bool {
		return len(strings.Split(v, "\n")) > 24 && strings.Contains(v, "of 151")
	})
	close(st.done)
	s.waitFor(t, "healthy", "Findings")
	tm.Send(key('q'))
	finish(t, tm)
}
