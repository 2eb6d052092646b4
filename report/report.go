// Package report renders a check's result: a terminal view, JSON (the
// schema of DESIGN.md) and markdown. Renderers read a result.Result only,
// so a saved JSON result renders the same later.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
)

// Formats lists the names accepted by Write.
var Formats = []string{"text", "json", "markdown", "junit"}

// Write renders r in format to w.
func Write(w io.Writer, format string, r *result.Result, color bool) error {
	switch format {
	case "text", "":
		return Text(w, r, color)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "markdown", "md":
		return Markdown(w, r)
	case "junit":
		return JUnit(w, r)
	case "html":
		return HTML(w, r)
	}
	return fmt.Errorf("unknown format %q: valid are %s", format, strings.Join(Formats, ", "))
}

type palette struct{ red, green, yellow, dim, bold, reset string }

func colors(on bool) palette {
	if !on {
		return palette{}
	}
	return palette{"\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[2m", "\x1b[1m", "\x1b[0m"}
}

// Text is the terminal view: steps, findings with evidence and remedy, and
// the journey of each failing connection.
func Text(w io.Writer, r *result.Result, color bool) error {
	c := colors(color)
	b := &strings.Builder{}
	dp := r.Datapath
	if dp == "" {
		dp = "unknown"
	}
	fmt.Fprintf(b, "%slvsdoctor %s%s · %s · datapath %s\n\n", c.bold, r.Version, c.reset, strings.Join(r.Services, ", "), dp)
	for _, s := range r.Steps {
		st := strings.ToUpper(string(s.Status))
		col := c.red
		switch s.Status {
		case result.Pass:
			st, col = "ok", c.green
		case result.Skipped:
			st, col = "skip", c.dim
		}
		host := s.Host
		if s.Service != "" {
			host += " " + s.Service
		}
		fmt.Fprintf(b, "  %-4s %-36s %s%-5s%s %s\n", "Q."+strings.TrimPrefix(s.ID, "Q"), trunc(host, 36), col, st, c.reset, s.Summary)
	}
	for _, f := range r.Findings {
		mark, col := "✗", c.red
		if f.Severity != result.SevError {
			mark, col = "!", c.yellow
		}
		howto := ""
		if f.Howto != "" {
			howto = "  (HOWTO " + f.Howto + ")"
		}
		where := f.Host
		if f.Address != "" {
			where += " " + f.Address
		}
		if f.Interface != "" {
			where += " " + f.Interface
		}
		fmt.Fprintf(b, "\n%s%s %s%s%s  %s\n", col, mark, f.ID, c.reset, howto, where)
		fmt.Fprintf(b, "  %s\n", f.Summary)
		for i, e := range f.Evidence {
			label := "evidence"
			if i > 0 {
				label = ""
			}
			fmt.Fprintf(b, "  %-9s %s\n", label, e)
		}
		for i, m := range f.Remedy {
			label := "fix"
			if i > 0 {
				label = ""
			}
			fmt.Fprintf(b, "  %-9s %s\n", label, m)
		}
		for _, a := range f.Alternatives {
			fmt.Fprintf(b, "  %-9s %s: %s\n", "or", a.ID, a.TellApart)
		}
	}
	for _, u := range r.Unchecked {
		fmt.Fprintf(b, "\n%s? not checked%s  %s: %s — %s\n", c.yellow, c.reset, u.Host, u.What, u.Why)
	}
	for _, j := range r.Journeys {
		if j.Result == "ok" {
			continue // the terminal view shows the journeys that failed
		}
		writeJourney(b, j, "  ")
	}
	verdictCol := c.green
	switch r.Verdict {
	case result.Faulty:
		verdictCol = c.red
	case result.Inconclusive:
		verdictCol = c.yellow
	}
	fmt.Fprintf(b, "\n%s%s%s · %d finding%s · %.1f s\n", verdictCol, r.Verdict, c.reset, len(r.Findings), plural(len(r.Findings)), float64(r.DurationMS)/1000)
	_, err := io.WriteString(w, b.String())
	return err
}

func writeJourney(b *strings.Builder, j result.Journey, indent string) {
	rs := ""
	if j.RealServer != "" {
		rs = " via " + j.RealServer
	}
	fmt.Fprintf(b, "\n%sjourney  %s%s  (%s)\n", indent, j.Flow, rs, j.Result)
	if len(j.Hops) == 0 {
		fmt.Fprintf(b, "%s  (no packet of it was seen on any host)\n", indent)
	}
	for i, h := range j.Hops {
		if i == maxJourneyHops && len(j.Hops) > maxJourneyHops+1 {
			// Retransmissions repeat the same ladder; the JSON keeps them all.
			fmt.Fprintf(b, "%s  … %d more packets (retransmissions; all in the JSON result)\n", indent, len(j.Hops)-maxJourneyHops)
			break
		}
		fmt.Fprintf(b, "%s  %-10s %-6s %-4s %s\n", indent, trunc(h.Host, 10), h.Interface, h.Direction, h.Packet)
	}
	if len(j.Hops) > 0 && j.Result != "ok" {
		fmt.Fprintf(b, "%s  %-10s %-6s %-4s (nothing after this)\n", indent, "", "", "—")
	}
}

// maxJourneyHops bounds a journey on screen and in the markdown report.
const maxJourneyHops = 12

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
