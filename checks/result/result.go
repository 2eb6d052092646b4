// Package result is the outcome of a check, in the shape of DESIGN.md's
// JSON schema lvsdoctor/result/v1. Tools and tests match on these field
// names: change them only together with DESIGN.md.
package result

import "time"

const Schema = "lvsdoctor/result/v1"

type Verdict string

const (
	Healthy      Verdict = "healthy"
	Faulty       Verdict = "faulty"
	Inconclusive Verdict = "inconclusive"
)

type Status string

const (
	Pass    Status = "pass"
	Fail    Status = "fail"
	Error   Status = "error" // the step could not run
	Skipped Status = "skipped"
)

type Severity string

const (
	SevError   Severity = "error"
	SevWarning Severity = "warning"
	SevInfo    Severity = "info"
)

type Result struct {
	Schema     string      `json:"schema"`
	Version    string      `json:"version,omitempty"`
	Started    time.Time   `json:"started"`
	Verdict    Verdict     `json:"verdict"`
	DurationMS int64       `json:"duration_ms"`
	Datapath   string      `json:"datapath,omitempty"`
	Services   []string    `json:"services,omitempty"`
	Steps      []Step      `json:"steps"`
	Findings   []Finding   `json:"findings"`
	Unchecked  []Unchecked `json:"unchecked"`
	Journeys   []Journey   `json:"journeys"`
}

type Step struct {
	ID       string   `json:"id"` // Q1..Q4
	Host     string   `json:"host"`
	Service  string   `json:"service,omitempty"`
	Status   Status   `json:"status"`
	Summary  string   `json:"summary"`
	Commands []string `json:"commands,omitempty"`
}

type Finding struct {
	ID           string        `json:"id"`
	Howto        string        `json:"howto"`
	Severity     Severity      `json:"severity"`
	Host         string        `json:"host"`
	Address      string        `json:"address,omitempty"` // RIP:RPORT for a real server
	Service      string        `json:"service,omitempty"`
	Interface    string        `json:"interface,omitempty"`
	Summary      string        `json:"summary"`
	Evidence     []string      `json:"evidence"`
	Remedy       []string      `json:"remedy"`
	Alternatives []Alternative `json:"alternatives,omitempty"`
}

type Alternative struct {
	ID        string `json:"id"`
	TellApart string `json:"tell_apart"`
}

type Unchecked struct {
	Host string `json:"host"`
	What string `json:"what"`
	Why  string `json:"why"`
}

type Journey struct {
	Flow       string `json:"flow"`
	RealServer string `json:"realserver,omitempty"`
	Result     string `json:"result,omitempty"` // the client's view: ok, timeout, reset...
	Hops       []Hop  `json:"hops"`
}

type Hop struct {
	Host      string `json:"host"`
	Interface string `json:"interface"`
	Direction string `json:"direction"` // in, out
	Packet    string `json:"packet"`
	Note      string `json:"note,omitempty"`
	TimeUS    int64  `json:"t_us,omitempty"` // since the first packet of the journey
}

// Decide sets the verdict by DESIGN.md's order: faulty, else
// inconclusive, else healthy. strict counts warnings as faults.
func (r *Result) Decide(strict bool) {
	r.Verdict = Healthy
	for _, f := range r.Findings {
		if f.Severity == SevError || (strict && f.Severity == SevWarning) {
			r.Verdict = Faulty
			return
		}
	}
	if len(r.Unchecked) > 0 {
		r.Verdict = Inconclusive
		return
	}
	for _, s := range r.Steps {
		if s.Status == Error {
			r.Verdict = Inconclusive
			return
		}
	}
}

// ExitCode maps the verdict to DESIGN.md's exit codes.
func (r *Result) ExitCode() int {
	switch r.Verdict {
	case Faulty:
		return 1
	case Inconclusive:
		return 3
	}
	return 0
}
