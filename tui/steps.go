package tui

import (
	"fmt"
	"strings"

	"charm.land/lipgloss/v2"

	"github.com/lvsdoctor/lvsdoctor/checks"
	"github.com/lvsdoctor/lvsdoctor/checks/result"
)

// stepRows is the check screen's list: one row per HOWTO step and host,
// in the order the check planned them, each holding the step's latest
// event.
type stepRows struct {
	rows []checks.Event
	at   map[checks.StepKey][]int // rows of a step; more than one if the plan names it twice
}

// apply moves a row along: planned adds it, running and outcomes replace
// it. The final outcomes are the classifier's and land on the rows in
// order, so the list ends as result.Steps; an event for a step no row
// names still gets a row (it must be seen, not lost).
func (s *stepRows) apply(e checks.Event) {
	if s.at == nil {
		s.at = map[checks.StepKey][]int{}
	}
	k := e.Key()
	idx := s.at[k]
	if e.State != checks.StatePlanned && len(idx) > 0 {
		switch {
		case e.Final:
			for _, i := range idx {
				if !s.rows[i].Final {
					s.rows[i] = e
					return
				}
			}
		case e.State.Landed():
			for _, i := range idx {
				if !s.rows[i].State.Landed() {
					s.rows[i] = e
					return
				}
			}
			for _, i := range idx {
				if !s.rows[i].Final {
					s.rows[i] = e
					return
				}
			}
			return
		default:
			for _, i := range idx {
				if !s.rows[i].State.Landed() {
					s.rows[i] = e
				}
			}
			return
		}
	}
	s.at[k] = append(idx, len(s.rows))
	s.rows = append(s.rows, e)
}

// ids lists the HOWTO steps present, in the order they first appear.
func (s *stepRows) ids() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range s.rows {
		if !seen[r.Step] {
			seen[r.Step] = true
			out = append(out, r.Step)
		}
	}
	return out
}

// runChrome is the check screen's lines besides the step list: title,
// services, blank, phase, blank, and below the list a blank and the keys.
const runChrome = 7

func (m *Model) stepAvail() int { return max(0, m.height-runChrome) }

// stepWindow is how many step rows show: all, when they fit; otherwise
// what is left below a summary line per HOWTO step, a blank and the line
// that says which rows show.
func (m *Model) stepWindow() int {
	n, avail := len(m.steps.rows), m.stepAvail()
	if n <= avail {
		return n
	}
	return max(0, avail-len(m.steps.ids())-2)
}

func (m *Model) clampStepTop() {
	n, w := len(m.steps.rows), m.stepWindow()
	m.stepTop = min(m.stepTop, n-w)
	m.stepTop = max(m.stepTop, 0)
}

// stepLines draws the step list fitted to the window, and says whether it
// scrolls. With more rows than lines (fifty real servers make 150 rows)
// each HOWTO step gets a line that counts its outcomes and names what
// failed, above a window of rows that ↑↓ move.
func (m *Model) stepLines() ([]string, bool) {
	rows := m.steps.rows
	if len(rows) == 0 {
		return nil, false
	}
	hw := 0
	for _, r := range rows {
		hw = max(hw, lipgloss.Width(where(r)))
	}
	hw = min(hw, 32)
	row := func(r checks.Event) string {
		summary := r.Summary
		if r.State == checks.StatePlanned {
			summary = "waiting: " + summary
		}
		return fmt.Sprintf("  %s %-4s %-*s  %s", m.stateMark(r.State), stepName(r.Step), hw, where(r), m.styles.dim.Render(summary))
	}
	avail := m.stepAvail()
	if len(rows) <= avail {
		out := make([]string, len(rows))
		for i, r := range rows {
			out[i] = row(r)
		}
		return out, false
	}
	var out []string
	for _, id := range m.steps.ids() {
		out = append(out, m.stepSummary(id))
	}
	w := m.stepWindow()
	if w <= 0 {
		if len(out) > avail {
			out = out[:avail]
		}
		return out, false
	}
	first := min(max(0, m.stepTop), len(rows)-w)
	out = append(out, "")
	for _, r := range rows[first : first+w] {
		out = append(out, row(r))
	}
	out = append(out, m.styles.dim.Render(fmt.Sprintf("  steps %d-%d of %d", first+1, first+w, len(rows))))
	return out, true
}

// where is a row's host, and its service for Q.3 and Q.4.
func where(r checks.Event) string {
	if r.Service == "" {
		return r.Host
	}
	return r.Host + " " + r.Service
}

// stateMark is a row's first column, four wide: a dot while it waits,
// the spinner while it runs, then the word the results screen uses.
func (m *Model) stateMark(st checks.State) string {
	switch st {
	case checks.StatePlanned:
		return m.styles.dim.Render("·") + "   "
	case checks.StateRunning:
		return m.spin.View() + "   "
	}
	return m.statusText(result.Status(st))
}

// stepSummary is one HOWTO step over all its rows: a mark (the spinner
// while any runs, else the worst outcome), the counts, and what failed.
func (m *Model) stepSummary(id string) string {
	count := map[checks.State]int{}
	var failed []string
	total := 0
	for _, r := range m.steps.rows {
		if r.Step != id {
			continue
		}
		total++
		count[r.State]++
		if r.State == checks.StateFail || r.State == checks.StateError {
			name := r.Host
			if id == "Q3" {
				name = r.Service
			}
			failed = append(failed, name)
		}
	}
	var mark string
	switch {
	case count[checks.StateRunning]+count[checks.StatePlanned] > 0:
		mark = m.spin.View() + "   "
	case count[checks.StateFail] > 0:
		mark = m.statusText(result.Fail)
	case count[checks.StateError] > 0:
		mark = m.statusText(result.Error)
	case count[checks.StatePass] > 0:
		mark = m.statusText(result.Pass)
	default:
		mark = m.statusText(result.Skipped)
	}
	var parts []string
	for _, c := range []struct {
		st   checks.State
		word string
	}{
		{checks.StateFail, "FAIL"}, {checks.StateError, "ERR"}, {checks.StatePass, "ok"},
		{checks.StateSkipped, "skipped"}, {checks.StateRunning, "running"}, {checks.StatePlanned, "waiting"},
	} {
		if n := count[c.st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, c.word))
		}
	}
	line := fmt.Sprintf("  %s %-4s %d step%s: %s", mark, stepName(id), total, plural(total), strings.Join(parts, ", "))
	if len(failed) > 0 {
		line += m.styles.dim.Render(" · FAIL/ERR: " + strings.Join(failed, ", "))
	}
	return line
}
