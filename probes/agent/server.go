package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync"
)

// Handler runs one operation. The result must be JSON-serialisable.
type Handler func(ctx context.Context, args json.RawMessage) (any, error)

// maxLine bounds one request: arguments are small, and a runaway peer must
// not make the agent allocate without limit.
const maxLine = 1 << 20

// A Router picks the handler that answers a request.
type Router func(req Request) (Handler, error)

// Single routes the requests of an agent that serves one host: its own.
func Single(ops map[string]Handler) Router {
	return func(req Request) (Handler, error) {
		if req.NS != "" {
			return nil, fmt.Errorf("this agent serves one host; it does not enter network namespace %q", req.NS)
		}
		h, ok := ops[req.Op]
		if !ok {
			return nil, fmt.Errorf("unknown operation %q", req.Op)
		}
		return h, nil
	}
}

// Serve answers requests from in on out until in is closed or ctx ends.
// Every request runs in its own goroutine. When in closes (the controller
// went away, or Ctrl-C killed the session) the context of every running
// probe is cancelled, so the agent never outlives the controller.
func Serve(ctx context.Context, in io.Reader, out io.Writer, route Router) error {
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
		h, err := route(req)
		if err != nil {
			reply(Response{ID: req.ID, Error: err.Error()})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := safeCall(ctx, h, req.Args)
			if err != nil {
				reply(Response{ID: req.ID, Error: err.Error()})
				return
			}
			b, err := json.Marshal(res)
			if err != nil {
				reply(Response{ID: req.ID, Error: fmt.Sprintf("encoding result: %v", err)})
				return
			}
			// The Response written around the result by hand: the
			// encoder would check and compact the result once more, and
			// a busy director's capture is megabytes (nor is it copied
			// into one line: three writes under the lock).
			head := strconv.AppendUint([]byte(`{"id":`), req.ID, 10)
			head = append(head, `,"result":`...)
			wmu.Lock()
			_, _ = out.Write(head)
			_, _ = out.Write(b)
			_, _ = out.Write([]byte("}\n"))
			wmu.Unlock()
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
