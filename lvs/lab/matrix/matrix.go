// Package matrix runs every fault of the lab through the check: a fresh
// lab, the fault injected, the check, the lab removed, and compares the
// findings with the injected fault. It is the catalogue's regression test
// and what `lvsdoctor lab matrix` prints.
package matrix

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lvsdoctor/lvsdoctor/checks"
	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/lvs/lab"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
)

// Case is one row: a fault (or none: the healthy lab) with its variant.
type Case struct {
	ID      string      `json:"id"` // "" for the healthy lab
	Variant string      `json:"variant,omitempty"`
	Host    string      `json:"host,omitempty"`
	Options lab.Options `json:"-"`
	// Datapath is the lab's datapath when it was chosen (lab matrix
	// --datapath); empty for each fault's own.
	Datapath string `json:"datapath,omitempty"`
	// Timeout is the check's probe timeout (checks.Options.Timeout; 0
	// for its default). Slow machines, such as an emulated VM, need more.
	Timeout time.Duration `json:"-"`
}

func (c Case) String() string {
	s := c.ID
	if s == "" {
		s = "healthy"
	}
	if c.Variant != "" {
		s += " --variant " + c.Variant
	}
	return s
}

// Row is the outcome of one case.
type Row struct {
	Case       Case     `json:"case"`
	Verdict    string   `json:"verdict"`
	Errors     []string `json:"errors"`   // error finding ids
	Warnings   []string `json:"warnings"` // warning finding ids
	Outcome    string   `json:"outcome"`  // exact, missed, misnamed, extra, false-alarm, error
	Detail     string   `json:"detail,omitempty"`
	DurationMS int64    `json:"duration_ms"` // the check alone
}

// OK says the row is what the catalogue promises.
func (r Row) OK() bool { return r.Outcome == "exact" || r.Outcome == "clean" }

// Cases lists the healthy lab and every fault with each of its variants,
// on each fault's own lab (auto datapath; faults that only exist under
// kernel IPVS are left out: CasesFor("ipvs") has them).
func Cases() []Case { return CasesFor("") }

// CasesFor is Cases with every lab on datapath (lab.Options.Datapath; ""
// keeps each fault's own). With "ipvs" the faults that need another
// datapath (lab.FaultInfo.Lab names nft or nft-stateless for what IPVS
// does by itself, such as letting ICMP redirects out) run on IPVS too and
// the IPVS-only faults are included; otherwise IPVS-only faults are left
// out.
func CasesFor(datapath string) []Case {
	withDP := func(o lab.Options) lab.Options {
		if datapath != "" {
			o.Datapath = datapath
		}
		return o
	}
	cs := []Case{{Options: withDP(lab.Options{}), Datapath: datapath}}
	for _, f := range lab.List() {
		if f.NeedsIPVS() && datapath != lab.DatapathIPVS {
			continue
		}
		if len(f.Variants) == 0 {
			cs = append(cs, Case{ID: f.ID, Options: withDP(f.Lab), Datapath: datapath})
			continue
		}
		for _, v := range f.Variants {
			cs = append(cs, Case{ID: f.ID, Variant: v, Options: withDP(f.Lab), Datapath: datapath})
		}
	}
	return cs
}

// Run runs cases, parallel labs at a time, calling progress after each.
func Run(ctx context.Context, cases []Case, parallel int, progress func(Row)) []Row {
	if parallel < 1 {
		parallel = 1
	}
	rows := make([]Row, len(cases))
	work := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				r := runCase(ctx, fmt.Sprintf("lvsdm%d", w), cases[i])
				rows[i] = r
				if progress != nil {
					mu.Lock()
					progress(r)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range cases {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	return rows
}

func runCase(ctx context.Context, name string, c Case) (row Row) {
	row = Row{Case: c}
	fail := func(err error) Row {
		row.Outcome, row.Detail = "error", err.Error()
		return row
	}
	_ = lab.Down(name) // a leftover of an interrupted run
	o := c.Options
	o.Name = name
	st, err := lab.Up(ctx, o)
	if err != nil {
		return fail(fmt.Errorf("lab up: %w", err))
	}
	defer lab.Down(name)
	if c.ID != "" {
		if err := lab.Inject(ctx, name, c.ID, c.Host, c.Variant); err != nil {
			return fail(err)
		}
	}
	var b bytes.Buffer
	if err := st.WriteTopology(&b); err != nil {
		return fail(err)
	}
	top, err := topology.Parse("lab "+name, b.Bytes())
	if err != nil {
		return fail(err)
	}
	start := time.Now()
	r, _ := checks.Run(ctx, top, checks.Options{Timeout: c.Timeout})
	row.DurationMS = time.Since(start).Milliseconds()
	row.Verdict = string(r.Verdict)
	for _, f := range r.Findings {
		switch f.Severity {
		case result.SevError:
			row.Errors = append(row.Errors, f.ID)
		case result.SevWarning:
			row.Warnings = append(row.Warnings, f.ID)
		}
	}
	row.Errors, row.Warnings = uniqSorted(row.Errors), uniqSorted(row.Warnings)
	row.Outcome, row.Detail = judge(c.ID, row, r)
	return row
}

// judge compares findings with the injected fault: exact when the fault is
// named and no other error finding stands beside it.
func judge(id string, row Row, r *result.Result) (string, string) {
	if id == "" {
		if len(row.Errors) > 0 || r.Verdict != result.Healthy {
			return "false-alarm", fmt.Sprintf("healthy lab: verdict %s, errors %v", r.Verdict, row.Errors)
		}
		return "clean", ""
	}
	named := contains(row.Errors, id) || contains(row.Warnings, id)
	var extra []string
	for _, e := range row.Errors {
		if e != id {
			extra = append(extra, e)
		}
	}
	switch {
	case named && len(extra) == 0:
		return "exact", ""
	case named:
		return "extra", "also " + strings.Join(extra, ", ")
	case len(row.Errors) > 0:
		return "misnamed", "found " + strings.Join(row.Errors, ", ")
	}
	return "missed", fmt.Sprintf("verdict %s, no finding", r.Verdict)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func uniqSorted(ss []string) []string {
	sort.Strings(ss)
	out := ss[:0]
	for i, s := range ss {
		if i == 0 || s != ss[i-1] {
			out = append(out, s)
		}
	}
	return out
}
