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

var cases = []struct {
	name   string
	faults []inject
	want   []string
}{
	{"healthy", nil, nil},
	{"rs-no-listener", []inject{{"rs-no-listener", ""}}, []string{"rs-no-listener"}},
	{"rs-no-listener@rs2", []inject{{"rs-no-listener@rs2", ""}}, []string{"rs-no-listener"}},
	{"rs-wrong-gateway", []inject{{"rs-wrong-gateway", ""}}, []string{"rs-wrong-gateway"}},
	{"rs-wrong-gateway/router-drops", []inject{{"rs-wrong-gateway", "router-drops"}}, []string{"rs-wrong-gateway"}},
	{"rs-wrong-gateway/no-default", []inject{{"rs-wrong-gateway", "no-default"}}, []string{"rs-wrong-gateway"}},
	{"rs-wrong-gateway@rs2", []inject{{"rs-wrong-gateway@rs2", ""}}, []string{"rs-wrong-gateway"}},
	{"director-no-forwarding", []inject{{"director-no-forwarding", ""}}, []string{"director-no-forwarding"}},
	{"director-no-masquerade", []inject{{"director-no-masquerade", ""}}, []string{"director-no-masquerade"}},
	{"director-firewall-drops-replies", []inject{{"director-firewall-drops-replies", ""}}, []string{"director-firewall-drops-replies"}},
	{"director-rpfilter-requests/cold", []inject{{"director-rpfilter-requests", "cold"}}, []string{"director-rpfilter-requests"}},
	{"director-rpfilter-requests/warm", []inject{{"director-rpfilter-requests", "warm"}}, []string{"director-rpfilter-requests"}},
	{"two: rs-no-listener@rs1 + rs-wrong-gateway@rs2", []inject{{"rs-no-listener@rs1", ""}, {"rs-wrong-gateway@rs2", ""}}, []string{"rs-no-listener", "rs-wrong-gateway"}},
	{"two: director-no-masquerade + rs-no-listener@rs2", []inject{{"director-no-masquerade", ""}, {"rs-no-listener@rs2", ""}}, []string{"director-no-masquerade", "rs-no-listener"}},
}

// TestLabFaults injects each fault into a fresh lab and requires exactly
// the expected error findings, and none on the healthy lab.
func TestLabFaults(t *testing.T) {
	testenv.RequireRoot(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, top := labtest.Up(t, lab.Options{})
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
