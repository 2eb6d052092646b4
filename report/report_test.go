package report_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvsdoctor/lvsdoctor/checks"
	"github.com/lvsdoctor/lvsdoctor/checks/classify"
	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
	"github.com/lvsdoctor/lvsdoctor/report"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/text"
)

var update = flag.Bool("update", false, "rewrite the golden reports in fixtures/")

// fixtures replays every recorded case into a result with a fixed start
// time and duration, so renderings are byte-for-byte stable.
func fixtures(t *testing.T) map[string]*result.Result {
	t.Helper()
	paths, _ := filepath.Glob("../fixtures/*/observations.json")
	if len(paths) == 0 {
		t.Fatal("no fixtures under fixtures/")
	}
	out := map[string]*result.Result{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var in classify.Input
		if err := json.Unmarshal(b, &in); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		r := checks.Judge(&in, false)
		r.Version = "test"
		r.Started = time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC)
		r.DurationMS = 1234
		out[filepath.Dir(p)] = r
	}
	return out
}

// TestMarkdownGolden keeps the markdown report of every recorded case as
// a golden file beside its observations (go test ./report -update).
func TestMarkdownGolden(t *testing.T) {
	for dir, r := range fixtures(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var b bytes.Buffer
			if err := report.Markdown(&b, r); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join(dir, "report.md")
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./report -update)", err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Errorf("markdown differs from %s (go test ./report -update, then review the diff)", golden)
			}
		})
	}
}

// TestMarkdownParses reads every report back with a CommonMark parser:
// the verdict is the title, every finding has its heading, and every
// remedy sits in a code block, so it renders on GitHub as meant.
func TestMarkdownParses(t *testing.T) {
	md := goldmark.New()
	for dir, r := range fixtures(t) {
		var b bytes.Buffer
		report.Markdown(&b, r)
		src := b.Bytes()
		doc := md.Parser().Parse(text.NewReader(src))
		var headings []string
		var code strings.Builder
		ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
			if !entering {
				return ast.WalkContinue, nil
			}
			switch n := n.(type) {
			case *ast.Heading:
				headings = append(headings, string(n.Lines().Value(src)))
			case *ast.FencedCodeBlock:
				for i := 0; i < n.Lines().Len(); i++ {
					seg := n.Lines().At(i)
					code.Write(seg.Value(src))
				}
			}
			return ast.WalkContinue, nil
		})
		name := filepath.Base(dir)
		if len(headings) == 0 || headings[0] != "lvsdoctor: "+string(r.Verdict) {
			t.Errorf("%s: first heading %q, want the verdict", name, headings)
		}
		for _, f := range r.Findings {
			found := false
			for _, h := range headings {
				found = found || strings.Contains(h, "`"+f.ID+"`")
			}
			if !found {
				t.Errorf("%s: no heading for finding %s in %q", name, f.ID, headings)
			}
			for _, m := range f.Remedy {
				if !strings.Contains(code.String(), m) {
					t.Errorf("%s: remedy %q not in a code block", name, m)
				}
			}
		}
	}
}

// TestJSONSchema validates the JSON of every recorded case against the
// published schema of the result.
func TestJSONSchema(t *testing.T) {
	c := jsonschema.NewCompiler()
	sch, err := c.Compile("../fixtures/schema/result-v1.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	for dir, r := range fixtures(t) {
		var b bytes.Buffer
		if err := report.Write(&b, "json", r, false); err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(&b)
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(doc); err != nil {
			t.Errorf("%s: %v", filepath.Base(dir), err)
		}
	}
}

// TestJUnitSchema validates the JUnit XML of every recorded case with
// xmllint against fixtures/schema/junit.xsd.
func TestJUnitSchema(t *testing.T) {
	xmllint := testenv.RequireCommand(t, "xmllint", "libxml2-utils")
	tmp := t.TempDir()
	for dir, r := range fixtures(t) {
		name := filepath.Base(dir)
		p := filepath.Join(tmp, name+".xml")
		var b bytes.Buffer
		if err := report.JUnit(&b, r); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(xmllint, "--noout", "--schema", "../fixtures/schema/junit.xsd", p).CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
		for _, f := range r.Findings {
			if f.Severity == result.SevError && !bytes.Contains(b.Bytes(), []byte(f.ID)) {
				t.Errorf("%s: finding %s missing from the JUnit XML", name, f.ID)
			}
		}
	}
}
