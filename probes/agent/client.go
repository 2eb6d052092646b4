package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"encoding/json"

	// The controller decodes every host's answers, a director's capture
	// of 8000 packets among them (800 KB of base64): segmentio's decoder
	// takes it in 0.4 ms where encoding/json took 11, and a director's
	// facts in 0.22 ms instead of 0.60, reading them as encoding/json
	// does (BenchmarkDecode, TestDecodeMatchesStdlib). Only the decoder:
	// its encoder writes a time.Duration as a string.
	sjson "github.com/segmentio/encoding/json"
)

// Client sends requests to one agent and matches the answers. A view
// made by In sends them, over the same pipe, to one network namespace of
// an agent that serves several.
type Client struct {
	*pipe
	ns string
}

type pipe struct {
	w       io.WriteCloser
	wmu     sync.Mutex
	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan []byte
	done    chan struct{}
	err     error // why the connection ended; set before done closes
}

// NewClient talks to an agent whose stdin is w and stdout is r.
func NewClient(w io.WriteCloser, r io.Reader) *Client {
	c := &Client{pipe: &pipe{w: w, pending: map[uint64]chan []byte{}, done: make(chan struct{})}}
	go c.read(r)
	return c
}

// In is a view of c whose requests run in network namespace ns; c must
// be an agent started with --netns.
func (c *Client) In(ns string) *Client { return &Client{pipe: c.pipe, ns: ns} }

func (c *pipe) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	// Captures come back in one line; their size is bounded by the
	// capture's packet limit, well under this.
	sc.Buffer(make([]byte, 256*1024), 256<<20)
	for sc.Scan() {
		id, ok := responseID(sc.Bytes())
		if !ok {
			continue
		}
		c.mu.Lock()
		ch := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if ch != nil {
			// The caller decodes the line once, straight into its result.
			ch <- append([]byte(nil), sc.Bytes()...)
		}
	}
	err := sc.Err()
	if err == nil {
		err = io.EOF
	}
	c.mu.Lock()
	c.err = fmt.Errorf("agent connection closed: %w", err)
	c.mu.Unlock()
	close(c.done)
}

// responseID reads the ID of a response line. The agent writes it first,
// `{"id":N,`; anything else is decoded the slow way.
func responseID(line []byte) (uint64, bool) {
	const prefix = `{"id":`
	if bytes.HasPrefix(line, []byte(prefix)) {
		var id uint64
		i := len(prefix)
		for ; i < len(line) && line[i] >= '0' && line[i] <= '9'; i++ {
			id = id*10 + uint64(line[i]-'0')
		}
		if i > len(prefix) && i < len(line) && (line[i] == ',' || line[i] == '}') {
			return id, true
		}
	}
	var r struct {
		ID uint64 `json:"id"`
	}
	if json.Unmarshal(line, &r) != nil {
		return 0, false
	}
	return r.ID, true
}

// ErrClosed wraps every error of a call on a connection that ended.
var ErrClosed = errors.New("agent connection closed")

// Call runs op with args on the agent and decodes the result into out.
func (c *Client) Call(ctx context.Context, op string, args, out any) error {
	raw, err := json.Marshal(args)
	if err != nil {
		return err
	}
	ch := make(chan []byte, 1)
	c.mu.Lock()
	c.next++
	id := c.next
	c.pending[id] = ch
	c.mu.Unlock()
	b, _ := json.Marshal(Request{ID: id, Op: op, Args: raw, NS: c.ns})
	b = append(b, '\n')
	c.wmu.Lock()
	_, werr := c.w.Write(b)
	c.wmu.Unlock()
	if werr != nil {
		c.forget(id)
		return fmt.Errorf("%w: %v", ErrClosed, werr)
	}
	select {
	case line := <-ch:
		// One pass over the line, decoding the result where the caller
		// wants it (json fills the pointer an interface holds).
		var resp struct {
			Result any    `json:"result"`
			Error  string `json:"error"`
		}
		if out != nil {
			resp.Result = out
		} else {
			resp.Result = &json.RawMessage{}
		}
		err := sjson.Unmarshal(line, &resp)
		if resp.Error != "" {
			return errors.New(resp.Error)
		}
		return err
	case <-c.done:
		c.forget(id)
		return fmt.Errorf("%w (%v)", ErrClosed, c.err)
	case <-ctx.Done():
		c.forget(id)
		return ctx.Err()
	}
}

func (c *pipe) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// Close ends the session: the agent sees EOF, cancels its probes and exits.
// On a view made by In it ends only that namespace's session (its
// captures stop); the pipe stays for the others.
func (c *Client) Close() error {
	if c.ns != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return c.Call(ctx, OpRelease, struct{}{}, nil)
	}
	return c.w.Close()
}

// Done is closed when the agent's output ends.
func (c *pipe) Done() <-chan struct{} { return c.done }
