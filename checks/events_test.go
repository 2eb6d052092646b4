package checks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvsdoctor/lvsdoctor/checks"
	"github.com/lvsdoctor/lvsdoctor/checks/classify"
	"github.com/lvsdoctor/lvsdoctor/checks/labtest"
	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/lvs/lab"
	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
)

// TestEventsPlanMatchesSteps: for every recorded fixture, the steps Plan
// announces are the steps the classifier reports, in the same order, so a
// progress view's rows are the rows that land. No root needed.
func TestEventsPlanMatchesSteps(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "fixtures", "*", "observations.json"))
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var in classify.Input
		if err := json.Unmarshal(b, &in); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		top := *in.Topology
		plan := checks.Plan(&top)
		r := checks.Judge(&in, false)
		var got, want []string
		for _, e := range plan {
			if e.State != checks.StatePlanned {
				t.Errorf("%s: plan entry %+v is not planned", f, e)
			}
			got = append(got, key(e.Key()))
		}
		for _, s := range r.Steps {
			want = append(want, key(checks.StepKey{ID: s.ID, Host: s.Host, Service: s.Service}))
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: plan\n  %s\nclassifier's steps\n  %s", f, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	}
}

func key(k checks.StepKey) string { return strings.TrimSpace(k.ID + " " + k.Host + " " + k.Service) }

// TestEventsLab runs the check against labs (healthy; rs2's default route
// bypassing the director; --static; rs2 not reachable) and requires the
// event stream's order: every step planned before any probe, then running,
// then a provisional outcome, and last the final outcomes, equal to
// result.Steps. A step lands without running only when it cannot run
// (skipped, error). The provisional outcomes come from the probes alone,
// and on these labs they agree with the classifier.
func TestEventsLab(t *testing.T) {
	testenv.RequireRoot(t)
	for _, c := range []struct {
		name, fault string
		static      bool
		unreachable string // a real server whose host is made unreachable
		// fails are the steps that must land with this outcome,
		// provisionally and finally.
		fails  []string
		errors []string
	}{
		{name: "healthy"},
		{name: "rs-wrong-gateway@rs2", fault: "rs-wrong-gateway@rs2", fails: []string{"Q2 rs2", "Q3 director tcp 203.0.113.100:80"}},
		{name: "static", static: true},
		{name: "rs2 unreachable", unreachable: "rs2", errors: []string{"Q1 rs2", "Q2 rs2", "Q4 rs2 tcp 203.0.113.100:80"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, top := labtest.Up(t, lab.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if c.fault != "" {
				id, host := lab.ParseFaultSpec(c.fault)
				if err := lab.Inject(ctx, st.Name, id, host, ""); err != nil {
					t.Fatalf("inject %s: %v", c.fault, err)
				}
			}
			if c.unreachable != "" {
				for i := range top.Services {
					for j, r := range top.Services[i].RealServers {
						if r.Label() == c.unreachable {
							top.Services[i].RealServers[j].Host = "netns:" + st.Name + "-nonexistent"
						}
					}
				}
			}
			var (
				mu     sync.Mutex
				events []checks.Event
				busy   bool
			)
			r, _ := checks.Run(ctx, top, checks.Options{Version: "test", Static: c.static, Events: func(e checks.Event) {
				mu.Lock()
				if busy {
					t.Errorf("Events called while another call runs")
				}
				busy = true
				events = append(events, e)
				mu.Unlock()
				time.Sleep(time.Millisecond) // a slow receiver: calls must still not overlap
				mu.Lock()
				busy = false
				mu.Unlock()
			}})
			mu.Lock()
			defer mu.Unlock()
			var log strings.Builder
			for _, e := range events {
				fmt.Fprintf(&log, "  %-28s %-8s final=%-5v %s\n", key(e.Key()), e.State, e.Final, e.Summary)
			}
			if t.Failed() {
				t.Fatalf("events:\n%s", log.String())
			}
			checkEventOrder(t, checks.Plan(top), events, r)
			for _, want := range []struct {
				steps []string
				st    checks.State
			}{{c.fails, checks.StateFail}, {c.errors, checks.StateError}} {
				for _, f := range want.steps {
					if !strings.Contains(log.String(), fmt.Sprintf("  %-28s %-8s final=false", f, want.st)) {
						t.Errorf("no provisional %s for %s", want.st, f)
					}
				}
			}
			if c.static {
				for _, s := range r.Steps {
					if s.Status != result.Skipped {
						t.Errorf("--static: step %s %s %s is %s", s.ID, s.Host, s.Service, s.Status)
					}
				}
			}
			if t.Failed() {
				t.Logf("events:\n%s", log.String())
			}
		})
	}
}

// checkEventOrder requires the order Event documents.
func checkEventOrder(t *testing.T, plan, events []checks.Event, r *result.Result) {
	t.Helper()
	if len(events) < len(plan)+len(r.Steps) {
		t.Fatalf("%d events for %d planned steps and %d results", len(events), len(plan), len(r.Steps))
	}
	// The plan, all of it, before anything else.
	for i, p := range plan {
		if events[i] != p {
			t.Errorf("event %d is %+v, want the planned %+v", i, events[i], p)
		}
	}
	// The final outcomes last, exactly result.Steps.
	tail := events[len(events)-len(r.Steps):]
	for i, s := range r.Steps {
		want := checks.Event{Step: s.ID, Host: s.Host, Service: s.Service, State: checks.State(s.Status), Summary: s.Summary, Final: true}
		if tail[i] != want {
			t.Errorf("final event %d is %+v, want %+v", i, tail[i], want)
		}
	}
	// In between: per step running, then a provisional outcome, and
	// nothing final.
	mid := events[len(plan) : len(events)-len(r.Steps)]
	type seen struct {
		running     int
		provisional checks.State
	}
	steps := map[checks.StepKey]*seen{}
	for _, p := range plan {
		steps[p.Key()] = &seen{}
	}
	for _, e := range mid {
		s := steps[e.Key()]
		switch {
		case s == nil:
			t.Errorf("event for a step not in the plan: %+v", e)
		case e.Final || e.State == checks.StatePlanned:
			t.Errorf("between plan and final: %+v", e)
		case e.State == checks.StateRunning:
			if s.provisional != "" {
				t.Errorf("running after its outcome %s: %+v", s.provisional, e)
			}
			s.running++
		case e.State.Landed():
			if s.running == 0 && e.State != checks.StateSkipped && e.State != checks.StateError {
				t.Errorf("an outcome of a step that did not run: %+v", e)
			}
			if s.provisional != "" {
				t.Errorf("a second provisional outcome: %+v", e)
			}
			s.provisional = e.State
		default:
			t.Errorf("unknown state: %+v", e)
		}
	}
	for _, st := range r.Steps {
		s := steps[checks.StepKey{ID: st.ID, Host: st.Host, Service: st.Service}]
		if s == nil {
			continue
		}
		if s.provisional == "" {
			t.Errorf("%s %s %s: no provisional outcome before the final %s", st.ID, st.Host, st.Service, st.Status)
		} else if s.provisional != checks.State(st.Status) {
			t.Errorf("%s %s %s: provisional %s, final %s", st.ID, st.Host, st.Service, s.provisional, st.Status)
		}
	}
}
