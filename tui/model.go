// Package tui is lvsdoctor's wizard: it builds a topology by asking
// questions (or takes one from a file), runs the check with live progress,
// and walks through the findings, each with its evidence, its journey as a
// ladder across client, director and real server, the HOWTO answer and the
// remedy.
package tui

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"charm.land/bubbles/v2/spinner"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/lvsdoctor/lvsdoctor/checks"
	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/report"
)

// Runner runs a check of top, telling progress what is happening and
// step how each HOWTO step on each host goes (checks.Options.Events: one
// call at a time, in order); the wizard cancels ctx on Ctrl-C and waits
// for the runner to return (the agents closed).
type Runner func(ctx context.Context, top *topology.Topology, progress func(string), step func(checks.Event)) (*result.Result, error)

// Config sets up the wizard.
type Config struct {
	// Topology, when set, skips the questions (wizard -f FILE).
	Topology *topology.Topology
	// SavePath is the default answer to "save the topology to".
	SavePath string
	// ReportDir is where m writes the markdown report (default: the
	// current directory).
	ReportDir string
	Run       Runner
	NoColor   bool
	// Now is the clock for report names (tests fix it).
	Now func() time.Time
}

type screen int

const (
	screenAsk screen = iota
	screenRun
	screenResults
	screenFinding
)

type (
	progressMsg string
	stepMsg     struct {
		e   checks.Event
		gen int
	}
	doneMsg struct {
		r   *result.Result
		err error
		gen int
	}
	quitTimeoutMsg struct{}
)

// asked is a question answered: esc goes back to it.
type asked struct {
	q      int
	d      draft
	answer string
}

// Model is the wizard's bubbletea model.
type Model struct {
	cfg    Config
	styles styles
	width  int
	height int
	screen screen

	// asking
	qs      []question
	q       int
	d       draft
	input   textinput.Model
	saveErr string
	history []asked

	// checking
	top      *topology.Topology
	spin     spinner.Model
	events   []string
	steps    stepRows
	stepTop  int // the first step row shown when they do not all fit
	started  time.Time
	cancel   context.CancelFunc
	ch       chan tea.Msg
	gen      int
	running  bool
	quitting bool
	done     chan struct{}

	// results
	res      *result.Result
	runErr   error
	findings []result.Finding
	cur      int
	scroll   int
	status   string

	// viewHook, in tests, sees every rendered screen.
	viewHook func(string)
}

// New makes the wizard.
func New(cfg Config) *Model {
	if cfg.SavePath == "" {
		cfg.SavePath = "lvsdoctor.yaml"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Model{cfg: cfg, styles: newStyles(cfg.NoColor), width: 80, height: 24}
	m.qs = questions(cfg.SavePath)
	m.input = textinput.New()
	m.input.Prompt = "> "
	m.input.CharLimit = 256
	m.spin = spinner.New(spinner.WithSpinner(spinner.Line))
	if cfg.Topology != nil {
		m.top = cfg.Topology
		m.screen = screenRun
	} else {
		m.setQuestion(qDirector)
	}
	return m
}

// Init starts the questions or the check.
func (m *Model) Init() tea.Cmd {
	if m.screen == screenRun {
		return m.startRun()
	}
	return m.input.Focus()
}

func (m *Model) setQuestion(i int) {
	m.q = i
	m.input.SetValue("")
	m.input.Placeholder = m.qs[i].placeholder
}

// Result is the last check's result (nil before one finished).
func (m *Model) Result() *result.Result { return m.res }

// Topology is what was checked (loaded, or built by the questions).
func (m *Model) Topology() *topology.Topology { return m.top }

// Shutdown cancels a running check and waits (up to 10 s) until its agents
// are closed. The wizard command calls it after the program ends however
// it ended.
func (m *Model) Shutdown() {
	if m.cancel != nil {
		m.cancel()
	}
	if m.running && m.done != nil {
		select {
		case <-m.done:
		case <-time.After(10 * time.Second):
		}
	}
}

func (m *Model) startRun() tea.Cmd {
	m.screen = screenRun
	m.gen++
	gen := m.gen
	m.events = nil
	m.steps, m.stepTop = stepRows{}, 0
	m.res, m.runErr, m.status = nil, nil, ""
	m.started = m.cfg.Now()
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	ch := make(chan tea.Msg, 64)
	done := make(chan struct{})
	m.ch, m.done, m.running = ch, done, true
	top, run := m.top, m.cfg.Run
	go func() {
		defer close(done)
		var r *result.Result
		var err error
		if run == nil {
			err = fmt.Errorf("no check runner")
		} else {
			r, err = run(ctx, top, func(s string) {
				select {
				case ch <- progressMsg(s):
				default:
				}
			}, func(e checks.Event) {
				// Unlike a progress line, a step event may not be lost
				// (the last one of a step is its outcome): wait for the
				// model, unless the check is being abandoned.
				select {
				case ch <- stepMsg{e: e, gen: gen}:
				case <-ctx.Done():
				}
			})
		}
		ch <- doneMsg{r: r, err: err, gen: gen}
	}()
	return tea.Batch(m.spin.Tick, wait(ch))
}

func wait(ch chan tea.Msg) tea.Cmd {
	return func() tea.Msg { return <-ch }
}

// Update handles keys, resizes and the check's events.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.input.SetWidth(max(10, m.width-4))
		m.clampScroll()
		m.clampStepTop()
		return m, nil
	case progressMsg:
		m.events = append(m.events, string(msg))
		return m, wait(m.ch)
	case stepMsg:
		if msg.gen != m.gen {
			// Only the current run's channel may have a reader: a
			// second one would deliver its events out of order.
			return m, nil
		}
		m.steps.apply(msg.e)
		return m, wait(m.ch)
	case doneMsg:
		if msg.gen != m.gen {
			return m, nil
		}
		m.running = false
		m.cancel()
		if m.quitting {
			return m, tea.Quit
		}
		m.res, m.runErr = msg.r, msg.err
		m.findings = nil
		if msg.r != nil {
			m.findings = sortFindings(msg.r.Findings)
		}
		m.cur, m.scroll = 0, 0
		m.screen = screenResults
		return m, nil
	case quitTimeoutMsg:
		return m, tea.Quit
	case spinner.TickMsg:
		if !m.running {
			return m, nil
		}
		var cmd tea.Cmd
		m.spin, cmd = m.spin.Update(msg)
		return m, cmd
	case tea.KeyPressMsg:
		if msg.String() == "ctrl+c" {
			return m.interrupt()
		}
		switch m.screen {
		case screenAsk:
			return m.updateAsk(msg)
		case screenRun:
			switch msg.String() {
			case "q", "esc":
				return m.interrupt()
			case "up", "k":
				m.stepTop--
			case "down", "j":
				m.stepTop++
			case "pgup":
				m.stepTop -= m.stepWindow()
			case "pgdown", "space":
				m.stepTop += m.stepWindow()
			case "home":
				m.stepTop = 0
			case "end":
				m.stepTop = len(m.steps.rows)
			}
			m.clampStepTop()
			return m, nil
		case screenResults:
			return m.updateResults(msg)
		case screenFinding:
			return m.updateFinding(msg)
		}
	case tea.PasteMsg:
		if m.screen == screenAsk {
			var cmd tea.Cmd
			m.input, cmd = m.input.Update(msg)
			return m, cmd
		}
	}
	return m, nil
}

// interrupt cancels a running check and quits once its agents are closed.
func (m *Model) interrupt() (tea.Model, tea.Cmd) {
	if m.running {
		m.quitting = true
		m.cancel()
		return m, tea.Tick(10*time.Second, func(time.Time) tea.Msg { return quitTimeoutMsg{} })
	}
	return m, tea.Quit
}

func (m *Model) updateAsk(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	q := m.qs[m.q]
	switch msg.String() {
	case "esc":
		// Back one question, the answer given there ready to edit; on
		// the first, quit.
		n := len(m.history)
		if n == 0 {
			return m, tea.Quit
		}
		h := m.history[n-1]
		m.history = m.history[:n-1]
		m.d = h.d
		m.setQuestion(h.q)
		m.input.SetValue(h.answer)
		m.saveErr = ""
		return m, nil
	case "enter":
		v := strings.TrimSpace(m.input.Value())
		if v == "" {
			v = q.def
		}
		if err := q.validate(&m.d, v); err != nil {
			return m, nil
		}
		prev := m.d
		prev.rss = append([]topology.RealServer(nil), m.d.rss...)
		m.history = append(m.history, asked{q: m.q, d: prev, answer: strings.TrimSpace(m.input.Value())})
		if q.apply != nil {
			q.apply(&m.d, v)
		}
		next := m.q + 1
		if q.next != nil {
			next = q.next(&m.d, v)
		}
		if next < qDone {
			m.setQuestion(next)
			return m, nil
		}
		top, err := Save(m.d.save, m.d.topology())
		if err != nil {
			m.history = m.history[:len(m.history)-1]
			m.saveErr = err.Error()
			m.setQuestion(qSave)
			return m, nil
		}
		m.top = top
		return m, m.startRun()
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	m.saveErr = ""
	return m, cmd
}

func (m *Model) updateResults(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	switch msg.String() {
	case "q", "esc":
		return m, tea.Quit
	case "up", "k":
		if m.cur > 0 {
			m.cur--
		}
	case "down", "j":
		if m.cur < len(m.findings)-1 {
			m.cur++
		}
	case "enter", "right", "l":
		if len(m.findings) > 0 {
			m.screen, m.scroll = screenFinding, 0
		}
	case "r":
		return m, m.startRun()
	case "m":
		m.export()
	}
	return m, nil
}

func (m *Model) updateFinding(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	switch msg.String() {
	case "q":
		return m, tea.Quit
	case "esc", "left", "h", "backspace":
		m.screen = screenResults
	case "up", "k":
		m.scroll--
	case "down", "j", "space":
		m.scroll++
	case "pgdown":
		m.scroll += m.bodyHeight()
	case "pgup":
		m.scroll -= m.bodyHeight()
	case "n", "tab":
		if m.cur < len(m.findings)-1 {
			m.cur, m.scroll = m.cur+1, 0
		}
	case "p", "shift+tab":
		if m.cur > 0 {
			m.cur, m.scroll = m.cur-1, 0
		}
	case "r":
		return m, m.startRun()
	case "m":
		m.export()
	}
	m.clampScroll()
	return m, nil
}

func (m *Model) clampScroll() {
	if m.screen != screenFinding {
		return
	}
	n := len(m.findingLines())
	if m.scroll > n-m.bodyHeight() {
		m.scroll = n - m.bodyHeight()
	}
	if m.scroll < 0 {
		m.scroll = 0
	}
}

// export writes the markdown report and says where.
func (m *Model) export() {
	if m.res == nil {
		m.status = "no result to export"
		return
	}
	dir := m.cfg.ReportDir
	if dir == "" {
		dir = "."
	}
	p := filepath.Join(dir, "lvsdoctor-report-"+m.cfg.Now().Format("20060102-150405")+".md")
	fh, err := os.Create(p)
	if err == nil {
		err = report.Markdown(fh, m.res)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		m.status = "export failed: " + err.Error()
		return
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	m.status = "markdown report written to\n  " + p
}

var sevRank = map[result.Severity]int{result.SevError: 0, result.SevWarning: 1, result.SevInfo: 2}

// sortFindings puts the most severe first, keeping the classifier's order
// within a severity.
func sortFindings(in []result.Finding) []result.Finding {
	out := append([]result.Finding(nil), in...)
	sort.SliceStable(out, func(i, j int) bool { return sevRank[out[i].Severity] < sevRank[out[j].Severity] })
	return out
}

type styles struct {
	title, dim, pass, fail, warn, sel, key, err lipgloss.Style
}

func newStyles(noColor bool) styles {
	p := lipgloss.NewStyle()
	if noColor {
		return styles{title: p.Bold(true), dim: p, pass: p, fail: p.Bold(true), warn: p, sel: p.Reverse(true), key: p.Bold(true), err: p}
	}
	return styles{
		title: p.Bold(true).Foreground(lipgloss.Color("12")),
		dim:   p.Foreground(lipgloss.Color("8")),
		pass:  p.Foreground(lipgloss.Color("2")),
		fail:  p.Bold(true).Foreground(lipgloss.Color("9")),
		warn:  p.Foreground(lipgloss.Color("11")),
		sel:   p.Reverse(true),
		key:   p.Bold(true).Foreground(lipgloss.Color("14")),
		err:   p.Foreground(lipgloss.Color("9")),
	}
}

// View draws the current screen, fitted to the window.
func (m *Model) View() tea.View {
	var s string
	switch m.screen {
	case screenAsk:
		s = m.viewAsk()
	case screenRun:
		s = m.viewRun()
	case screenResults:
		s = m.viewResults()
	case screenFinding:
		s = m.viewFinding()
	}
	s = fit(s, m.width, m.height)
	if m.viewHook != nil {
		m.viewHook(s)
	}
	v := tea.NewView(s)
	v.AltScreen = true
	v.WindowTitle = "lvsdoctor wizard"
	return v
}

// fit cuts every line to width and the whole to height.
func fit(s string, w, h int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if h > 0 && len(lines) > h {
		lines = lines[:h]
	}
	for i, l := range lines {
		if w > 0 && lipgloss.Width(l) > w {
			lines[i] = truncate(l, w)
		}
	}
	return strings.Join(lines, "\n")
}

func truncate(s string, w int) string {
	if lipgloss.Width(s) <= w {
		return s
	}
	if w <= 1 {
		return "…"
	}
	return lipgloss.NewStyle().MaxWidth(w-1).Render(s) + "…"
}

func (m *Model) header(sub string) string {
	return m.styles.title.Render("lvsdoctor wizard") + m.styles.dim.Render(" · "+sub)
}

func (m *Model) footer(keys ...string) string {
	var parts []string
	for i := 0; i+1 < len(keys); i += 2 {
		parts = append(parts, m.styles.key.Render(keys[i])+" "+keys[i+1])
	}
	return strings.Join(parts, "  ")
}

func (m *Model) viewAsk() string {
	var b strings.Builder
	b.WriteString(m.header(fmt.Sprintf("describe the cluster (%d/%d)", min(m.q+1, qSave+1), qSave+1)) + "\n\n")
	// What has been answered so far.
	if m.d.director != "" {
		fmt.Fprintf(&b, "  director   %s\n", m.d.director)
	}
	if m.d.vip != "" {
		fmt.Fprintf(&b, "  service    %s %s\n", orDef(m.d.proto, "tcp"), m.d.vip)
	}
	for _, r := range m.d.rss {
		fmt.Fprintf(&b, "  %-10s %s  %s\n", r.Name, r.Address, r.Host)
	}
	if m.d.client != "" {
		fmt.Fprintf(&b, "  client     %s %s\n", m.d.client, m.d.cip)
	}
	b.WriteString("\n")
	q := m.qs[m.q]
	prompt := q.prompt
	if strings.Contains(prompt, "%d") {
		prompt = fmt.Sprintf(prompt, len(m.d.rss)+1)
	}
	b.WriteString(m.styles.title.Render(prompt) + "\n")
	if q.help != "" {
		b.WriteString(m.styles.dim.Render(q.help) + "\n")
	}
	b.WriteString(m.input.View() + "\n")
	v := strings.TrimSpace(m.input.Value())
	switch {
	case m.saveErr != "":
		b.WriteString(m.styles.err.Render("✗ "+m.saveErr) + "\n")
	case v != "":
		if err := q.validate(&m.d, v); err != nil {
			b.WriteString(m.styles.err.Render("✗ "+err.Error()) + "\n")
		} else {
			b.WriteString(m.styles.pass.Render("✓") + "\n")
		}
	case q.def != "":
		b.WriteString(m.styles.dim.Render("enter: "+q.def) + "\n")
	default:
		b.WriteString("\n")
	}
	if m.q == qDirector && len(m.history) == 0 {
		b.WriteString("\n" + m.footer("enter", "next", "esc", "quit"))
	} else {
		b.WriteString("\n" + m.footer("enter", "next", "esc", "back", "ctrl+c", "quit"))
	}
	return b.String()
}

func orDef(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func stepName(id string) string { return strings.Replace(id, "Q", "Q.", 1) }

func (m *Model) viewRun() string {
	var b strings.Builder
	sub := "checking"
	if m.quitting {
		sub = "stopping: closing the agents"
	}
	b.WriteString(m.header(sub) + "\n")
	if m.top != nil {
		var svcs []string
		for _, s := range m.top.Services {
			svcs = append(svcs, s.String())
		}
		b.WriteString(m.styles.dim.Render(strings.Join(svcs, ", ")) + "\n")
	}
	// Only the phase under way: the steps below say what is done.
	phase := "starting"
	if n := len(m.events); n > 0 {
		phase = m.events[n-1]
	}
	b.WriteString("\n" + m.spin.View() + " " + phase + "\n\n")
	lines, scrolls := m.stepLines()
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	b.WriteString("\n")
	if scrolls {
		b.WriteString(m.footer("↑↓", "scroll", "ctrl+c", "stop"))
	} else {
		b.WriteString(m.footer("ctrl+c", "stop"))
	}
	return b.String()
}

func (m *Model) statusText(st result.Status) string {
	switch st {
	case result.Pass:
		return m.styles.pass.Render("ok  ")
	case result.Fail:
		return m.styles.fail.Render("FAIL")
	case result.Error:
		return m.styles.warn.Render("ERR ")
	}
	return m.styles.dim.Render("skip")
}

func (m *Model) sevText(s result.Severity) string {
	switch s {
	case result.SevError:
		return m.styles.fail.Render("✗")
	case result.SevWarning:
		return m.styles.warn.Render("!")
	}
	return m.styles.dim.Render("i")
}

func (m *Model) viewResults() string {
	var b strings.Builder
	if m.res == nil {
		b.WriteString(m.header("the check could not run") + "\n\n")
		if m.runErr != nil {
			b.WriteString(m.styles.err.Render(m.runErr.Error()) + "\n")
		}
		b.WriteString("\n" + m.footer("r", "re-run", "q", "quit"))
		return b.String()
	}
	r := m.res
	verdict := string(r.Verdict)
	switch r.Verdict {
	case result.Healthy:
		verdict = m.styles.pass.Render(verdict)
	case result.Faulty:
		verdict = m.styles.fail.Render(verdict)
	default:
		verdict = m.styles.warn.Render(verdict)
	}
	b.WriteString(m.header("result") + "\n")
	fmt.Fprintf(&b, "%s · %d finding%s · %.1f s\n\n", verdict, len(m.findings), plural(len(m.findings)), float64(r.DurationMS)/1000)

	// Steps: compact, as many as fit above the findings.
	var steps []string
	for _, s := range r.Steps {
		svc := ""
		if s.Service != "" {
			svc = " " + s.Service
		}
		steps = append(steps, fmt.Sprintf("  %s %-4s %s  %s", m.statusText(s.Status), stepName(s.ID), s.Host+svc, m.styles.dim.Render(s.Summary)))
	}
	var finds []string
	if len(m.findings) == 0 {
		finds = append(finds, m.styles.pass.Render("  no findings"))
	}
	for i, f := range m.findings {
		where := f.Host
		if f.Address != "" {
			where += " " + f.Address
		}
		line := fmt.Sprintf("%s %s  %s  %s", m.sevText(f.Severity), f.ID, where, f.Summary)
		if i == m.cur {
			line = m.styles.sel.Render("▸ " + truncate(line, max(10, m.width-3)))
		} else {
			line = "  " + line
		}
		finds = append(finds, line)
	}
	statusLines := 0
	if m.status != "" {
		statusLines = strings.Count(m.status, "\n") + 1
	}
	// The findings get the room they need first (at least three lines
	// stay for the steps); beyond, a window that follows the selection.
	budget := m.height - 7 - statusLines - min(3, len(steps))
	if len(r.Unchecked) > 0 {
		budget-- // a line for them, at least
	}
	budget = max(1, budget)
	if len(finds) > budget {
		first := min(max(0, m.cur-budget/2), len(finds)-budget)
		finds = finds[first : first+budget]
	}
	if n := len(r.Unchecked); n > 0 {
		if len(finds)+n <= budget {
			for _, u := range r.Unchecked {
				finds = append(finds, m.styles.warn.Render(fmt.Sprintf("  unchecked %s %s: %s", u.Host, u.What, u.Why)))
			}
		} else {
			finds = append(finds, m.styles.warn.Render(fmt.Sprintf("  %d unchecked (m: the markdown report lists them)", n)))
		}
	}
	avail := m.height - 4 - 3 - len(finds) - statusLines // header, verdict, blank; "Findings", blank, footer lines
	if avail < 0 {
		avail = 0
	}
	if len(steps) > avail {
		if avail > 0 {
			steps = append(steps[:avail-1], m.styles.dim.Render(fmt.Sprintf("  … %d more steps", len(steps)-avail+1)))
		} else {
			steps = nil
		}
	}
	for _, s := range steps {
		b.WriteString(s + "\n")
	}
	b.WriteString("\n" + m.styles.title.Render("Findings") + m.styles.dim.Render(" (most severe first)") + "\n")
	for _, f := range finds {
		b.WriteString(f + "\n")
	}
	if m.status != "" {
		b.WriteString(m.status + "\n")
	}
	b.WriteString(m.footer("↑↓", "select", "enter", "open", "r", "re-run", "m", "markdown", "q", "quit"))
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func (m *Model) bodyHeight() int {
	return max(1, m.height-3-strings.Count(m.status, "\n"))
}

// findingLines is the finding view's scrollable body.
func (m *Model) findingLines() []string {
	if m.cur >= len(m.findings) {
		return nil
	}
	f := m.findings[m.cur]
	var b strings.Builder
	where := f.Host
	for _, s := range []string{f.Address, f.Interface, f.Service} {
		if s != "" {
			where += " " + s
		}
	}
	fmt.Fprintf(&b, "%s %s  %s\n", m.sevText(f.Severity), m.styles.title.Render(f.ID), where)
	fmt.Fprintf(&b, "%s\n\n", wrap(f.Summary, m.width, "", "  "))
	fmt.Fprintf(&b, "%s  HOWTO %s · severity %s\n\n", m.styles.key.Render("answer"), f.Howto, f.Severity)
	b.WriteString(m.styles.key.Render("evidence") + "\n")
	for _, e := range f.Evidence {
		b.WriteString(wrap(e, m.width, "  ", "    ") + "\n")
	}
	b.WriteString("\n" + m.styles.key.Render("remedy") + "\n")
	for _, r := range f.Remedy {
		for _, l := range strings.Split(r, "\n") {
			b.WriteString(wrap(l, m.width, "  ", "    ") + "\n")
		}
	}
	for _, a := range f.Alternatives {
		fmt.Fprintf(&b, "\n%s %s: %s\n", m.styles.dim.Render("or"), a.ID, a.TellApart)
	}
	for _, j := range m.journeysFor(f) {
		b.WriteString("\n" + m.ladder(j))
	}
	return strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
}

// wrap breaks s at spaces to fit width, the first line after first, the
// rest after rest; a word longer than a line is cut.
func wrap(s string, width int, first, rest string) string {
	w := width - lipgloss.Width(rest)
	if width <= 0 || w < 10 || lipgloss.Width(first+s) <= width {
		return first + s
	}
	var lines []string
	line, ind := "", first
	for _, word := range strings.Fields(s) {
		if line != "" && lipgloss.Width(ind+line+" "+word) > width {
			lines = append(lines, ind+line)
			line, ind = "", rest
		}
		if line == "" {
			line = word
		} else {
			line += " " + word
		}
	}
	if line != "" {
		lines = append(lines, ind+line)
	}
	return strings.Join(lines, "\n")
}

// journeysFor picks the journeys that show a finding: through its real
// server and service when it names them, troubled ones first, at most two.
func (m *Model) journeysFor(f result.Finding) []result.Journey {
	var bad, good []result.Journey
	for _, j := range m.res.Journeys {
		if j.RealServer != "" && f.Host != "" && j.RealServer != f.Host && m.isRealServer(f.Host) {
			continue
		}
		if proto, vip, ok := strings.Cut(f.Service, " "); ok && strings.Contains(vip, ":") {
			if !strings.HasPrefix(j.Flow, proto+" ") || !strings.HasSuffix(j.Flow, " "+vip) {
				continue
			}
		} else if _, port, ok := strings.Cut(f.Address, ":"); ok && !strings.HasSuffix(j.Flow, ":"+port) {
			continue
		}
		if j.Result == "ok" {
			good = append(good, j)
		} else {
			bad = append(bad, j)
		}
	}
	out := append(bad, good...)
	if len(out) > 2 {
		out = out[:2]
	}
	return out
}

func (m *Model) isRealServer(label string) bool {
	if m.top == nil {
		return false
	}
	for _, s := range m.top.Services {
		for _, r := range s.RealServers {
			if r.Label() == label {
				return true
			}
		}
	}
	return false
}

// column places a host of a journey on the ladder: 0 client, 1 director,
// 2 real server.
func (m *Model) column(host string, j result.Journey) int {
	if m.top != nil {
		switch host {
		case m.top.Client.Label():
			return 0
		case m.top.Director.Label():
			return 1
		}
	}
	switch {
	case host == "client":
		return 0
	case host == "director":
		return 1
	case host == j.RealServer:
		return 2
	}
	return 2
}

// ladder draws a journey across client, director and real server columns:
// each packet is a dot in its host's column, with an arrow where it leaves
// (→ toward the real server, ← toward the client) and the packet beside.
func (m *Model) ladder(j result.Journey) string {
	var b strings.Builder
	rs := j.RealServer
	if rs == "" {
		rs = "real server"
	}
	res := j.Result
	if res == "" {
		res = "?"
	}
	fmt.Fprintf(&b, "%s  %s  (%s)\n", m.styles.key.Render("journey"), j.Flow, res)
	const cw = 9
	width := 2*cw + 3 // the real server's column needs only its line
	cols := []string{"client", "director", rs}
	head := ""
	for _, c := range cols {
		head += fmt.Sprintf("%-*s", cw, truncate(c, cw-1))
	}
	b.WriteString("  " + m.styles.dim.Render(head) + "\n")
	for i, h := range j.Hops {
		c := m.column(h.Host, j)
		row := []rune(strings.Repeat(" ", width))
		for k := 0; k < 3; k++ {
			row[k*cw+1] = '│'
		}
		row[c*cw+1] = '●'
		// A packet that leaves and lands on another column: draw the wire.
		if h.Direction == "out" && i+1 < len(j.Hops) && j.Hops[i+1].Direction == "in" {
			n := m.column(j.Hops[i+1].Host, j)
			if n > c {
				for x := c*cw + 2; x < n*cw+1; x++ {
					row[x] = '─'
				}
				row[n*cw] = '▶'
			} else if n < c {
				for x := n*cw + 2; x < c*cw+1; x++ {
					row[x] = '─'
				}
				row[n*cw+2] = '◀'
			}
		}
		text := fmt.Sprintf("%-3s %-5s %s", h.Direction, h.Interface, h.Packet)
		if h.Note != "" {
			text += "  " + h.Note
		}
		b.WriteString("  " + string(row) + text + "\n")
	}
	if j.Result == "timeout" {
		row := []rune(strings.Repeat(" ", width))
		for k := 0; k < 3; k++ {
			row[k*cw+1] = '╵'
		}
		b.WriteString("  " + string(row) + m.styles.dim.Render("(nothing after this)") + "\n")
	}
	return b.String()
}

func (m *Model) viewFinding() string {
	lines := m.findingLines()
	h := m.bodyHeight()
	end := min(len(lines), m.scroll+h)
	start := min(m.scroll, end)
	var b strings.Builder
	b.WriteString(m.header(fmt.Sprintf("finding %d of %d", m.cur+1, len(m.findings))) + "\n")
	for _, l := range lines[start:end] {
		b.WriteString(l + "\n")
	}
	for i := end - start; i < h; i++ {
		b.WriteString("\n")
	}
	if m.status != "" {
		b.WriteString(m.status + "\n")
	} else if len(lines) > h {
		b.WriteString(m.styles.dim.Render(fmt.Sprintf("lines %d-%d of %d", start+1, end, len(lines))) + "\n")
	} else {
		b.WriteString("\n")
	}
	b.WriteString(m.footer("↑↓", "scroll", "n/p", "next/prev", "esc", "back", "r", "re-run", "m", "markdown", "q", "quit"))
	return b.String()
}
