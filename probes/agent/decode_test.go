package agent

import (
	stdjson "encoding/json"
	"math/rand/v2"
	"os"
	"reflect"
	"testing"

	json "github.com/segmentio/encoding/json"

	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// recorded is every answer the healthy lab's recording holds, as the
// agent's answer lines to the controller, decoded into a fresh value of
// its type by decode; and the director's capture as the agent sends it,
// with packed frames.
func recorded(t testing.TB) (answers []answer, capture []byte) {
	t.Helper()
	b, err := os.ReadFile("../../fixtures/healthy/observations.json")
	if err != nil {
		t.Fatal(err)
	}
	var in struct {
		Hosts map[string]struct {
			Before, After, Capture, Ping, Trace stdjson.RawMessage
			RouteGets                           []stdjson.RawMessage
		}
		Services []struct{ Conns stdjson.RawMessage }
	}
	if err := stdjson.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	line := func(result stdjson.RawMessage) []byte {
		l, err := stdjson.Marshal(Response{ID: 7, Result: result})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	add := func(name string, result stdjson.RawMessage, fresh func() any) {
		if len(result) > 0 && string(result) != "null" {
			answers = append(answers, answer{name, line(result), fresh})
		}
	}
	for h, x := range in.Hosts {
		add(h+" facts before", x.Before, func() any { return &obs.Facts{} })
		add(h+" facts after", x.After, func() any { return &obs.Facts{} })
		add(h+" capture", x.Capture, func() any { return &obs.Capture{} })
		add(h+" ping", x.Ping, func() any { return &obs.Ping{} })
		add(h+" trace", x.Trace, func() any { return &obs.Trace{} })
		for _, rg := range x.RouteGets {
			add(h+" route get", rg, func() any { return &obs.RouteGet{} })
		}
	}
	for _, s := range in.Services {
		conns, _ := stdjson.Marshal(map[string]stdjson.RawMessage{"conns": s.Conns})
		add("connect", conns, func() any { return &obs.Connect{} })
	}
	var c obs.Capture
	if err := stdjson.Unmarshal(in.Hosts["director"].Capture, &c); err != nil {
		t.Fatal(err)
	}
	// As the agent sends it: packed frames (here arbitrary bytes: their
	// decoding is capture.Unpack's) beside the recording's packets.
	c.Frames = frames(4096)
	cl, err := stdjson.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return answers, line(cl)
}

type answer struct {
	name  string
	line  []byte
	fresh func() any
}

// frames is n records' worth of packed frames, some 80 bytes each.
func frames(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n*80)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// decode is what Call does with an answer line.
func decode(un func([]byte, any) error, line []byte, out any) error {
	var resp struct {
		Result any    `json:"result"`
		Error  string `json:"error"`
	}
	resp.Result = out
	return un(line, &resp)
}

// TestDecodeMatchesStdlib: the controller's decoder reads recorded answers
// of every kind exactly as encoding/json does.
func TestDecodeMatchesStdlib(t *testing.T) {
	answers, capture := recorded(t)
	answers = append(answers, answer{"capture with frames", capture, func() any { return &obs.Capture{} }})
	kinds := map[string]bool{}
	for _, a := range answers {
		want, got := a.fresh(), a.fresh()
		if err := decode(stdjson.Unmarshal, a.line, want); err != nil {
			t.Fatalf("%s: %v", a.name, err)
		}
		if err := decode(json.Unmarshal, a.line, got); err != nil {
			t.Fatalf("%s: %v", a.name, err)
		}
		if !reflect.DeepEqual(want, got) {
			t.Errorf("%s decodes differently:\nencoding/json %+v\nsegmentio     %+v", a.name, want, got)
		}
		kinds[reflect.TypeOf(want).String()] = true
	}
	if len(kinds) < 6 {
		t.Errorf("only %d kinds of answer recorded: %v", len(kinds), kinds)
	}
}

// BenchmarkDecode: the controller's decoding of a director's capture of
// 8000 packets (packed, as fifty real servers' test sends) and of a
// host's facts, with segmentio's decoder and with encoding/json.
func BenchmarkDecode(b *testing.B) {
	answers, _ := recorded(b)
	var facts []byte
	for _, a := range answers {
		if a.name == "director facts after" {
			facts = a.line
		}
	}
	c, err := stdjson.Marshal(obs.Capture{Interfaces: []string{"eth0", "eth1"}, Frames: frames(8000)})
	if err != nil {
		b.Fatal(err)
	}
	capture, _ := stdjson.Marshal(Response{ID: 7, Result: c})
	for _, lib := range []struct {
		name string
		un   func([]byte, any) error
	}{{"segmentio", json.Unmarshal}, {"encoding_json", stdjson.Unmarshal}} {
		b.Run("capture8000/"+lib.name, func(b *testing.B) {
			b.SetBytes(int64(len(capture)))
			for b.Loop() {
				var out obs.Capture
				if err := decode(lib.un, capture, &out); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("facts/"+lib.name, func(b *testing.B) {
			b.SetBytes(int64(len(facts)))
			for b.Loop() {
				var out obs.Facts
				if err := decode(lib.un, facts, &out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
