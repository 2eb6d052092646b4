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

func (f *fakeRunner) run(_ context.Context, top *topology.Topology, progress func(string)) (*result.Result, error) {
	f.calls.Add(1)
	if f.tops != nil {
		f.tops <- top
	}
	progress("reaching 3 hosts")
	progress("classifying")
	return f.r, nil
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
	run := func(ctx context.Context, _ *topology.Topology, progress func(string)) (*result.Result, error) {
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
