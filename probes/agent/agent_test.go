package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// serve runs Serve on a pipe pair with route and returns a client of it.
func serve(t *testing.T, route Router) *Client {
	t.Helper()
	reqR, reqW := io.Pipe()
	respR, respW := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = Serve(context.Background(), reqR, respW, route)
		respW.Close()
	}()
	c := NewClient(reqW, respR)
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return c
}

type echoArgs struct {
	S string `json:"s"`
}

func TestSingleAgent(t *testing.T) {
	c := serve(t, Single(map[string]Handler{
		"echo": func(_ context.Context, raw json.RawMessage) (any, error) {
			var a echoArgs
			err := json.Unmarshal(raw, &a)
			return a, err
		},
		"fail": func(context.Context, json.RawMessage) (any, error) { return nil, errors.New("it failed") },
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// A result with every character JSON escapes comes back whole.
	want := "a \"quoted\" <line>\n\\ with \u2028 and \x01"
	var got echoArgs
	if err := c.Call(ctx, "echo", echoArgs{want}, &got); err != nil || got.S != want {
		t.Errorf("echo = %q, %v; want %q", got.S, err, want)
	}
	if err := c.Call(ctx, "echo", echoArgs{"x"}, nil); err != nil {
		t.Errorf("a call that wants no result: %v", err)
	}
	if err := c.Call(ctx, "fail", struct{}{}, nil); err == nil || err.Error() != "it failed" {
		t.Errorf("fail = %v, want the handler's error", err)
	}
	if err := c.Call(ctx, "nope", struct{}{}, nil); err == nil || !strings.Contains(err.Error(), `unknown operation "nope"`) {
		t.Errorf("unknown op = %v", err)
	}
	// An agent for one host never runs a request meant for a namespace
	// in its own.
	err := c.In("lvsd-rs1").Call(ctx, "echo", echoArgs{"x"}, nil)
	if err == nil || !strings.Contains(err.Error(), `does not enter network namespace "lvsd-rs1"`) {
		t.Errorf("request for a namespace = %v, want it refused", err)
	}
}

// TestRoutedByNamespace: the views of one client reach the router with
// their namespace, and closing a view releases only it.
func TestRoutedByNamespace(t *testing.T) {
	released := make(chan string, 2)
	c := serve(t, func(req Request) (Handler, error) {
		if req.Op == OpRelease {
			return func(context.Context, json.RawMessage) (any, error) {
				released <- req.NS
				return struct{}{}, nil
			}, nil
		}
		return func(context.Context, json.RawMessage) (any, error) { return req.NS, nil }, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, ns := range []string{"a", "b"} {
		var got string
		if err := c.In(ns).Call(ctx, "where", struct{}{}, &got); err != nil || got != ns {
			t.Errorf("In(%q) ran in %q (%v)", ns, got, err)
		}
	}
	if err := c.In("a").Close(); err != nil {
		t.Fatal(err)
	}
	if ns := <-released; ns != "a" {
		t.Errorf("released %q, want a", ns)
	}
	var got string
	if err := c.In("b").Call(ctx, "where", struct{}{}, &got); err != nil || got != "b" {
		t.Errorf("b after a's release: %q, %v", got, err)
	}
}

func TestResponseID(t *testing.T) {
	for _, tc := range []struct {
		line string
		id   uint64
		ok   bool
	}{
		{`{"id":42,"result":{}}`, 42, true},
		{`{"id":7}`, 7, true},
		{`{"id":18446744073709551615,"error":"x"}`, 18446744073709551615, true},
		{`{"error":"x","id":9}`, 9, true},     // another writer's order: decoded
		{`{ "id": 3, "result": 1 }`, 3, true}, // spaces: decoded
		{`{"id":}`, 0, false},
		{`not json`, 0, false},
	} {
		id, ok := responseID([]byte(tc.line))
		if id != tc.id || ok != tc.ok {
			t.Errorf("responseID(%s) = %d, %v; want %d, %v", tc.line, id, ok, tc.id, tc.ok)
		}
	}
}
