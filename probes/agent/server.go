package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// Handler runs one operation. The result must be JSON-serialisable.
type Handler func(ctx context.Context, args json.RawMessage) (any, error)

// maxLine bounds one request: arguments are small, and a runaway peer must
// not make the agent allocate without limit.
const maxLine = 1 << 20

// Serve answers requests from in on out until in is closed or ctx ends.
// Every request runs in its own goroutine. When in closes (the controller
// went away, or Ctrl-C killed the session) the context of every running
// probe is cancelled, so the agent never outlives the controller.
func Serve(ctx context.Context, in io.Reader, out io.Writer, ops map[string]Handler) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wmu sync.Mutex
		wg  sync.WaitGroup
	)
	enc := json.NewEncoder(out)
	reply := func(r Response) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = enc.Encode(r)
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64*1024), maxLine)
	for sc.Scan() {
		var req Request
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			reply(Response{Error: fmt.Sprintf("bad request: %v", err)})
			continue
		}
		h, ok := ops[req.Op]
		if !ok {
			reply(Response{ID: req.ID, Error: fmt.Sprintf("unknown operation %q", req.Op)})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := safeCall(ctx, h, req.Args)
			r := Response{ID: req.ID}
			if err != nil {
				r.Error = err.Error()
			} else if b, merr := json.Marshal(res); merr != nil {
				r.Error = fmt.Sprintf("encoding result: %v", merr)
			} else {
				r.Result = b
			}
			reply(r)
		}()
	}
	cancel()
	wg.Wait()
	return sc.Err()
}

// safeCall turns a probe's panic into an error for that request: one bad
// probe must not take the other probes of the host down with it.
func safeCall(ctx context.Context, h Handler, args json.RawMessage) (res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("probe panicked: %v", p)
		}
	}()
	return h(ctx, args)
}
