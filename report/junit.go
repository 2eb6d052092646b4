package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
)

// JUnit XML as Jenkins (junit-10.xsd) and GitLab read it: one test case
// per step and host; a failed step carries the findings about its host,
// with their remedies, so a CI page shows the fix next to the failure.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr,omitempty"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr,omitempty"`
	Type    string `xml:"type,attr,omitempty"`
	Body    string `xml:",chardata"`
}

// JUnit writes r as JUnit XML.
func JUnit(w io.Writer, r *result.Result) error {
	suite := junitSuite{Name: "lvsdoctor " + strings.Join(r.Services, ", "), Time: "0", Timestamp: r.Started.UTC().Format("2006-01-02T15:04:05")}
	used := map[int]bool{}
	for _, s := range r.Steps {
		name := s.Host
		if s.Service != "" {
			name += " " + s.Service
		}
		c := junitCase{Name: name, Classname: "lvsdoctor." + howtoStep(s.ID), Time: "0", SystemOut: strings.Join(s.Commands, "\n")}
		switch s.Status {
		case result.Fail:
			msg := s.Summary
			var body strings.Builder
			fmt.Fprintln(&body, s.Summary)
			for i, f := range r.Findings {
				if f.Host != s.Host {
					continue
				}
				used[i] = true
				writeFindingText(&body, f)
			}
			c.Failure = &junitMessage{Message: msg, Type: "fail", Body: body.String()}
			suite.Failures++
		case result.Error:
			c.Error = &junitMessage{Message: s.Summary, Type: "error", Body: s.Summary}
			suite.Errors++
		case result.Skipped:
			c.Skipped = &junitMessage{Message: s.Summary}
			suite.Skipped++
		}
		suite.Cases = append(suite.Cases, c)
	}
	// Findings no failed step carried (static ones, warnings) get a case
	// of their own, so none is lost on a CI page.
	for i, f := range r.Findings {
		if used[i] {
			continue
		}
		var body strings.Builder
		writeFindingText(&body, f)
		c := junitCase{Name: f.ID + " " + f.Host, Classname: "lvsdoctor.finding", Time: "0"}
		if f.Severity == result.SevError {
			c.Failure = &junitMessage{Message: f.Summary, Type: f.ID, Body: body.String()}
			suite.Failures++
		} else {
			c.SystemOut = body.String()
		}
		suite.Cases = append(suite.Cases, c)
	}
	for _, u := range r.Unchecked {
		suite.Cases = append(suite.Cases, junitCase{Name: u.Host + " " + u.What, Classname: "lvsdoctor.unchecked", Time: "0",
			Error: &junitMessage{Message: u.Why, Type: "inconclusive", Body: u.Why}})
		suite.Errors++
	}
	suite.Tests = len(suite.Cases)
	suite.Time = fmt.Sprintf("%.3f", float64(r.DurationMS)/1000)
	all := junitSuites{Name: "lvsdoctor", Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors, Time: suite.Time, Suites: []junitSuite{suite}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func howtoStep(id string) string { return strings.Replace(id, "Q", "Q.", 1) }

func writeFindingText(b *strings.Builder, f result.Finding) {
	fmt.Fprintf(b, "\n%s (%s, HOWTO %s) on %s: %s\n", f.ID, f.Severity, f.Howto, f.Host, f.Summary)
	for _, e := range f.Evidence {
		fmt.Fprintf(b, "  evidence: %s\n", e)
	}
	for _, m := range f.Remedy {
		fmt.Fprintf(b, "  fix: %s\n", m)
	}
}
