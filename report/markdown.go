package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
)

// Markdown is the incident write-up: verdict first, then steps, findings
// with evidence and remedy, and the journeys.
func Markdown(w io.Writer, r *result.Result) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "# lvsdoctor: %s\n\n", r.Verdict)
	fmt.Fprintf(b, "%d finding%s · %s · datapath %s · %s · %.1f s · lvsdoctor %s\n\n",
		len(r.Findings), plural(len(r.Findings)), strings.Join(r.Services, ", "), orUnknown(r.Datapath),
		r.Started.UTC().Format("2006-01-02 15:04:05 UTC"), float64(r.DurationMS)/1000, r.Version)
	if len(r.Findings) > 0 {
		b.WriteString("## Findings\n\n")
		for _, f := range r.Findings {
			where := f.Host
			if f.Address != "" {
				where += " " + f.Address
			}
			if f.Interface != "" {
				where += " (" + f.Interface + ")"
			}
			fmt.Fprintf(b, "### %s `%s` on %s\n\n", sevIcon(f.Severity), f.ID, mdEscape(where))
			if f.Howto != "" {
				fmt.Fprintf(b, "HOWTO %s · severity %s\n\n", f.Howto, f.Severity)
			}
			fmt.Fprintf(b, "%s\n\n", mdEscape(f.Summary))
			if len(f.Evidence) > 0 {
				b.WriteString("Evidence:\n\n")
				for _, e := range f.Evidence {
					fmt.Fprintf(b, "- `%s`\n", strings.ReplaceAll(e, "`", "'"))
				}
				b.WriteString("\n")
			}
			if len(f.Remedy) > 0 {
				b.WriteString("Remedy:\n\n```sh\n")
				for _, m := range f.Remedy {
					b.WriteString(m + "\n")
				}
				b.WriteString("```\n\n")
			}
			for _, a := range f.Alternatives {
				fmt.Fprintf(b, "Could also be `%s`: %s\n\n", a.ID, mdEscape(a.TellApart))
			}
		}
	}
	b.WriteString("## Steps\n\n| step | host | service | status | summary |\n| --- | --- | --- | --- | --- |\n")
	for _, s := range r.Steps {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", s.ID, cell(s.Host), cell(s.Service), s.Status, cell(s.Summary))
	}
	b.WriteString("\n")
	if len(r.Unchecked) > 0 {
		b.WriteString("## Not checked\n\n")
		for _, u := range r.Unchecked {
			fmt.Fprintf(b, "- **%s**, %s: %s\n", mdEscape(u.Host), mdEscape(u.What), mdEscape(u.Why))
		}
		b.WriteString("\n")
	}
	if len(r.Journeys) > 0 {
		b.WriteString("## Journeys\n\n")
		for _, j := range r.Journeys {
			jb := &strings.Builder{}
			writeJourney(jb, j, "")
			fmt.Fprintf(b, "```\n%s\n```\n\n", strings.TrimSpace(jb.String()))
		}
	}
	b.WriteString("## Manual commands\n\n```sh\n")
	for _, s := range r.Steps {
		for _, c := range s.Commands {
			fmt.Fprintf(b, "%-60s # %s %s\n", c, s.ID, s.Host)
		}
	}
	b.WriteString("```\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func sevIcon(s result.Severity) string {
	switch s {
	case result.SevError:
		return "❌"
	case result.SevWarning:
		return "⚠️"
	}
	return "ℹ️"
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func cell(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s)
}

func mdEscape(s string) string {
	return strings.NewReplacer("*", "\\*", "_", "\\_", "<", "&lt;", ">", "&gt;").Replace(s)
}
