package checks

import (
	"fmt"
	"sync"

	"github.com/lvsdoctor/lvsdoctor/checks/classify"
	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// State is where one HOWTO step on one host stands while a check runs.
// The four outcomes are result.Status's own values.
type State string

const (
	StatePlanned State = "planned"
	StateRunning State = "running"
	StatePass    State = State(result.Pass)
	StateFail    State = State(result.Fail)
	StateError   State = State(result.Error)
	StateSkipped State = State(result.Skipped)
)

// Landed says the step has an outcome (pass, fail, error, skipped).
func (s State) Landed() bool {
	return s != StatePlanned && s != StateRunning && s != ""
}

// StepKey names a step the way result.Step does: Q1..Q4, the host's label
// and, for Q.3 and Q.4, the service.
type StepKey struct {
	ID      string
	Host    string
	Service string
}

// Event is a change of one step while a check runs (Options.Events).
//
// For every step of Plan, in order: one StatePlanned event before any
// probe starts; StateRunning when its probe starts (again, with a new
// Summary, when part of it is done); a provisional outcome as soon as the
// probe's own observation tells (Q.1: the ping; Q.2: the traceroute's
// first hop; Q.3 and Q.4: the classifier's view of the captures once they
// stopped); and at the end, after classification, one Final event per
// result.Steps entry, in that order, which is what the step's outcome is.
// A provisional outcome may differ from the final one; the final wins.
// Steps that cannot run (--static, a host not reached) land without
// running.
type Event struct {
	Step    string `json:"step"` // Q1..Q4, as result.Step.ID
	Host    string `json:"host"`
	Service string `json:"service,omitempty"`
	State   State  `json:"state"`
	Summary string `json:"summary,omitempty"`
	// Final marks the classifier's status: equal to result.Steps.
	Final bool `json:"final,omitempty"`
}

// Key is the step the event is about.
func (e Event) Key() StepKey { return StepKey{e.Step, e.Host, e.Service} }

// Plan lists the HOWTO steps a check of top reports, as StatePlanned
// events, in the order of result.Steps: Q.1 then Q.2 on each real server,
// Q.3 on the director per service, Q.4 on each real server of each
// service. It walks the topology the way runProbes and the classifier do
// (realServers, top.Services), so the rows a progress view draws are the
// steps that will land.
func Plan(top *topology.Topology) []Event {
	cip := "the client"
	if a := top.ClientAddr(); a.IsValid() {
		cip = a.String()
	}
	var out []Event
	rss := realServers(top)
	for _, r := range rss {
		out = append(out, Event{Step: "Q1", Host: r.Label(), State: StatePlanned,
			Summary: fmt.Sprintf("ping %s from %s", cip, r.Address)})
	}
	for _, r := range rss {
		out = append(out, Event{Step: "Q2", Host: r.Label(), State: StatePlanned,
			Summary: fmt.Sprintf("traceroute to %s from %s; is the first hop the DIP?", cip, r.Address)})
	}
	for _, s := range top.Services {
		out = append(out, Event{Step: "Q3", Host: top.Director.Label(), Service: s.String(), State: StatePlanned,
			Summary: "test connections from the client, captured on every director interface"})
	}
	for _, s := range top.Services {
		for _, r := range s.RealServers {
			out = append(out, Event{Step: "Q4", Host: r.Label(), Service: s.String(), State: StatePlanned,
				Summary: "capture on " + r.Label() + " while the test connections run"})
		}
	}
	return out
}

// emitter hands events to Options.Events one at a time: probes finish on
// many goroutines, and a receiver that draws a screen should not need its
// own lock, nor see a step's outcome before the event that started it.
// Once a step landed, its provisional outcome stands until the final one:
// a step that could not run (its host not reached) is not shown running
// later because the rest of its service runs.
type emitter struct {
	mu     sync.Mutex
	fn     func(Event)
	plan   []Event
	times  map[StepKey]int // how often the plan names a step
	landed map[StepKey]int // how many of those have landed
}

func newEmitter(fn func(Event), top *topology.Topology) *emitter {
	e := &emitter{fn: fn, plan: Plan(top), times: map[StepKey]int{}, landed: map[StepKey]int{}}
	for _, p := range e.plan {
		e.times[p.Key()]++
	}
	return e
}

func (e *emitter) emit(ev Event) {
	if e.fn == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if k := ev.Key(); !ev.Final && e.times[k] > 0 {
		switch {
		case ev.State == StateRunning && e.landed[k] >= e.times[k]:
			return
		case ev.State.Landed():
			if e.landed[k] >= e.times[k] {
				return
			}
			e.landed[k]++
		}
	}
	e.fn(ev)
}

func (e *emitter) planned() {
	for _, ev := range e.plan {
		e.emit(ev)
	}
}

// land gives every planned step that match selects the same outcome.
func (e *emitter) land(match func(Event) bool, st State, summary string) {
	for _, ev := range e.plan {
		if match(ev) {
			ev.State, ev.Summary = st, summary
			e.emit(ev)
		}
	}
}

// landAll is land for every step: --static, or no client address.
func (e *emitter) landAll(st State, summary string) {
	e.land(func(Event) bool { return true }, st, summary)
}

// unreached lands the steps that cannot run because a host was not
// reached: its own Q.1, Q.2, Q.4; for the director or the client, every
// Q.3 (no test connection can be made or followed).
func (e *emitter) unreached(in *classify.Input, top *topology.Topology) {
	for _, h := range in.Hosts {
		if h.Error == "" {
			continue
		}
		switch h.Role {
		case classify.RoleRealServer:
			e.land(func(ev Event) bool { return ev.Host == h.Label && ev.Step != "Q3" }, StateError, "not reached: "+h.Error)
		case classify.RoleDirector:
			e.land(func(ev Event) bool { return ev.Step == "Q3" }, StateError, "director not reached: "+h.Error)
		case classify.RoleClient:
			e.land(func(ev Event) bool { return ev.Step == "Q3" }, StateError, "the client was not reached, no test connections: "+h.Error)
		}
	}
}

// service lands Q.3 and Q.4 of one service (index i of top.Services), or
// marks them running.
func (e *emitter) service(top *topology.Topology, i int, st State, q3, q4 string) {
	svc := top.Services[i].String()
	for _, ev := range e.plan {
		if ev.Service != svc {
			continue
		}
		switch ev.Step {
		case "Q3":
			ev.State, ev.Summary = st, q3
		case "Q4":
			ev.State, ev.Summary = st, q4
		default:
			continue
		}
		e.emit(ev)
	}
}

// steps forwards the classifier's steps with the given ids: provisional
// (final false) or final.
func (e *emitter) steps(steps []result.Step, final bool, ids ...string) {
	for _, s := range steps {
		if len(ids) > 0 && !contains(ids, s.ID) {
			continue
		}
		e.emit(Event{Step: s.ID, Host: s.Host, Service: s.Service, State: State(s.Status), Summary: s.Summary, Final: final})
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// pingOutcome is Q.1 as the ping saw it: replies or none.
func pingOutcome(label, rip, cip string, p *obs.Ping) (State, string) {
	switch {
	case p.Received > 0:
		return StatePass, fmt.Sprintf("%s (%s) pings %s: %d/%d replies", label, rip, cip, p.Received, p.Sent)
	case p.Error != "":
		return StateFail, fmt.Sprintf("%s (%s) cannot ping %s: %s", label, rip, cip, p.Error)
	}
	return StateFail, fmt.Sprintf("%s (%s) pings %s: %d/%d replies", label, rip, cip, p.Received, p.Sent)
}

// hostError is what went wrong on h, read under the lock probes write it
// with.
func hostError(h *classify.Host, mu *sync.Mutex) string {
	mu.Lock()
	defer mu.Unlock()
	return h.Error
}
