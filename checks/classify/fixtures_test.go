package classify

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
)

// TestFixtures replays observations recorded from the lab (fixtures/, one
// folder per case, re-recorded with LVSDOCTOR_RECORD) through the
// classifier and requires exactly the recorded fault's error findings.
func TestFixtures(t *testing.T) {
	dirs, _ := filepath.Glob("../../fixtures/*/observations.json")
	if len(dirs) == 0 {
		t.Fatal("no fixtures found under fixtures/")
	}
	for _, p := range dirs {
		name := filepath.Base(filepath.Dir(p))
		t.Run(name, func(t *testing.T) {
			var in Input
			load(t, p, &in)
			var exp struct{ Findings []string }
			load(t, filepath.Join(filepath.Dir(p), "expected.json"), &exp)
			out := Run(&in)
			var got []string
			for _, f := range out.Findings {
				if f.Severity == result.SevError {
					got = append(got, f.ID)
				}
			}
			sort.Strings(got)
			sort.Strings(exp.Findings)
			if strings.Join(got, ",") != strings.Join(exp.Findings, ",") {
				t.Fatalf("findings %v, want %v", got, exp.Findings)
			}
			if len(exp.Findings) == 0 && len(out.Unchecked) > 0 {
				t.Errorf("healthy fixture has unchecked items: %+v", out.Unchecked)
			}
		})
	}
}

func load(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// BenchmarkClassify times the classifier on every recorded case: the part
// of a check that is pure computation.
func BenchmarkClassify(b *testing.B) {
	paths, _ := filepath.Glob("../../fixtures/*/observations.json")
	var ins []*Input
	for _, p := range paths {
		var in Input
		load(b, p, &in)
		ins = append(ins, &in)
	}
	for b.Loop() {
		for _, in := range ins {
			classifyAfresh(in)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(ins)), "µs/case")
}

// BenchmarkClassifyFile times the classifier on the observations file that
// LVSDOCTOR_BENCH_OBSERVATIONS names (`lvsdoctor check --observations
// FILE`), e.g. of the 50-real-server lab, too large to keep in fixtures/.
func BenchmarkClassifyFile(b *testing.B) {
	path := os.Getenv("LVSDOCTOR_BENCH_OBSERVATIONS")
	if path == "" {
		b.Skip("LVSDOCTOR_BENCH_OBSERVATIONS names no observations file")
	}
	var in Input
	load(b, path, &in)
	for b.Loop() {
		classifyAfresh(&in)
	}
}

// classifyAfresh runs the classifier as a check does, once on observations
// that carry no index of an earlier run.
func classifyAfresh(in *Input) {
	for _, h := range in.Hosts {
		h.flows = nil
	}
	Run(in)
}
