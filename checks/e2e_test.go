package checks_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lvsdoctor/lvsdoctor/checks"
	"github.com/lvsdoctor/lvsdoctor/checks/labtest"
	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/lvs/lab"
	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
	"github.com/lvsdoctor/lvsdoctor/report"
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 && !testenv.Strict() {
		// The tests skip one by one with the reason; no binary needed.
		os.Exit(m.Run())
	}
	os.Exit(labtest.Main(m))
}

type inject struct{ spec, variant string }

// labCase is one scenario: a lab built with opts, the faults injected,
// and exactly the error findings (ids) the check must give.
type labCase struct {
	name   string
	opts   lab.Options
	faults []inject
	want   []string
	// warnings, when set, are the warning findings required as well.
	warnings []string
}

var cases = []labCase{
	{name: "healthy"},
	{name: "rs-no-listener", faults: []inject{{"rs-no-listener", ""}}, want: []string{"rs-no-listener"}},
	{name: "rs-no-listener@rs2", faults: []inject{{"rs-no-listener@rs2", ""}}, want: []string{"rs-no-listener"}},
	{name: "rs-wrong-gateway", faults: []inject{{"rs-wrong-gateway", ""}}, want: []string{"rs-wrong-gateway"}},
	{name: "rs-wrong-gateway/router-drops", faults: []inject{{"rs-wrong-gateway", "router-drops"}}, want: []string{"rs-wrong-gateway"}},
	{name: "rs-wrong-gateway/no-default", faults: []inject{{"rs-wrong-gateway", "no-default"}}, want: []string{"rs-wrong-gateway"}},
	{name: "rs-wrong-gateway@rs2", faults: []inject{{"rs-wrong-gateway@rs2", ""}}, want: []string{"rs-wrong-gateway"}},
	{name: "director-no-forwarding", faults: []inject{{"director-no-forwarding", ""}}, want: []string{"director-no-forwarding"}},
	{name: "director-no-masquerade", faults: []inject{{"director-no-masquerade", ""}}, want: []string{"director-no-masquerade"}},
	{name: "director-firewall-drops-replies", faults: []inject{{"director-firewall-drops-replies", ""}}, want: []string{"director-firewall-drops-replies"}},
	{name: "director-rpfilter-requests/cold", faults: []inject{{"director-rpfilter-requests", "cold"}}, want: []string{"director-rpfilter-requests"}},
	{name: "director-rpfilter-requests/warm", faults: []inject{{"director-rpfilter-requests", "warm"}}, want: []string{"director-rpfilter-requests"}},
	{name: "two: rs-no-listener@rs1 + rs-wrong-gateway@rs2", faults: []inject{{"rs-no-listener@rs1", ""}, {"rs-wrong-gateway@rs2", ""}}, want: []string{"rs-no-listener", "rs-wrong-gateway"}},
	{name: "two: director-no-masquerade + rs-no-listener@rs2", faults: []inject{{"director-no-masquerade", ""}, {"rs-no-listener@rs2", ""}}, want: []string{"director-no-masquerade", "rs-no-listener"}},
}

// TestLabFaults injects each fault into a fresh lab and requires exactly
// the expected error findings, and none on the healthy lab.
func TestLabFaults(t *testing.T) { runLabCases(t, cases) }

func runLabCases(t *testing.T, cases []labCase) {
	testenv.RequireRoot(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, top := labtest.Up(t, c.opts)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			for _, f := range c.faults {
				id, host := lab.ParseFaultSpec(f.spec)
				if err := lab.Inject(ctx, st.Name, id, host, f.variant); err != nil {
					t.Fatalf("inject %s: %v", f.spec, err)
				}
			}
			r, in := checks.Run(ctx, top, checks.Options{Version: "test"})
			got := errorIDs(r)
			want := append([]string(nil), c.want...)
			sort.Strings(want)
			record(t, c.name, in, want)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				dump(t, r, in)
				t.Fatalf("findings %v, want %v", got, want)
			}
			if c.warnings != nil {
				if got, want := warningIDs(r), sorted(c.warnings); strings.Join(got, ",") != strings.Join(want, ",") {
					dump(t, r, in)
					t.Fatalf("warnings %v, want %v", got, want)
				}
			}
			wantVerdict := result.Faulty
			if len(want) == 0 {
				wantVerdict = result.Healthy
			}
			if r.Verdict != wantVerdict {
				dump(t, r, in)
				t.Fatalf("verdict %s, want %s", r.Verdict, wantVerdict)
			}
			for _, f := range r.Findings {
				if len(f.Evidence) == 0 || len(f.Remedy) == 0 || f.Summary == "" {
					t.Errorf("finding %s lacks summary, evidence or remedy: %+v", f.ID, f)
				}
			}
		})
	}
}

func warningIDs(r *result.Result) []string {
	var ids []string
	for _, f := range r.Findings {
		if f.Severity == result.SevWarning {
			ids = append(ids, f.ID)
		}
	}
	return sorted(ids)
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func errorIDs(r *result.Result) []string {
	var ids []string
	for _, f := range r.Findings {
		if f.Severity == result.SevError {
			ids = append(ids, f.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

// dump writes what the check saw, for a failing test; with
// LVSDOCTOR_RECORD=DIR it also keeps the observations there.
func dump(t *testing.T, r *result.Result, in any) {
	t.Helper()
	var b strings.Builder
	report.Text(&b, r, false)
	t.Log("\n" + b.String())
	if dir := os.Getenv("LVSDOCTOR_DUMP"); dir != "" {
		raw, _ := json.MarshalIndent(in, "", " ")
		os.WriteFile(filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_", ":", "").Replace(t.Name())+".json"), raw, 0o644)
	}
}

// record keeps the observations of a case as a fixture when
// LVSDOCTOR_RECORD names the fixtures directory: the classifier's unit
// tests replay them without root.
func record(t *testing.T, name string, in any, want []string) {
	dir := os.Getenv("LVSDOCTOR_RECORD")
	if dir == "" {
		return
	}
	d := filepath.Join(dir, fixtureName(name))
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	raw, err := json.MarshalIndent(in, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if want == nil {
		want = []string{}
	}
	exp, _ := json.MarshalIndent(map[string]any{"findings": want}, "", "  ")
	if err := os.WriteFile(filepath.Join(d, "observations.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "expected.json"), append(exp, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func fixtureName(s string) string {
	s = strings.NewReplacer("two: ", "two-", " + ", "+", "/", "--", "@", "@", " ", "-").Replace(s)
	return s
}
