package checks

import (
	"github.com/lvsdoctor/lvsdoctor/checks/classify"
	"github.com/lvsdoctor/lvsdoctor/checks/result"
)

// Judge turns observations into a result: classification, the services'
// names, and the verdict. It is what Run does after the probes, and what
// replays recorded observations (fixtures, --observations files).
func Judge(in *classify.Input, strict bool) *result.Result {
	out := classify.Run(in)
	r := &result.Result{
		Schema:    result.Schema,
		Datapath:  out.Datapath,
		Steps:     nonNil(out.Steps),
		Findings:  nonNil(out.Findings),
		Unchecked: nonNil(out.Unchecked),
		Journeys:  nonNil(out.Journeys),
	}
	for _, s := range in.Topology.Services {
		r.Services = append(r.Services, s.String())
	}
	r.Decide(strict)
	return r
}

// nonNil keeps empty lists as [] in JSON: a reader tells "none" from "not
// there".
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
