package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Client sends requests to one agent and matches the answers.
type Client struct {
	w       io.WriteCloser
	wmu     sync.Mutex
	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan Response
	done    chan struct{}
	err     error // why the connection ended; set before done closes
}

// NewClient talks to an agent whose stdin is w and stdout is r.
func NewClient(w io.WriteCloser, r io.Reader) *Client {
	c := &Client{w: w, pending: map[uint64]chan Response{}, done: make(chan struct{})}
	go c.read(r)
	return c
}

func (c *Client) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	// Captures come back in one line; their size is bounded by the
	// capture's packet limit, well under this.
	sc.Buffer(make([]byte, 256*1024), 256<<20)
	for sc.Scan() {
		var resp Response
		if err := json.Unmarshal(sc.Bytes(), &resp); err != nil {
			continue
		}
		c.mu.Lock()
		ch := c.pending[resp.ID]
		delete(c.pending, resp.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- resp
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

// ErrClosed wraps every error of a call on a connection that ended.
var ErrClosed = errors.New("agent connection closed")

// Call runs op with args on the agent and decodes the result into out.
func (c *Client) Call(ctx context.Context, op string, args, out any) error {
	raw, err := json.Marshal(args)
	if err != nil {
		return err
	}
	ch := make(chan Response, 1)
	c.mu.Lock()
	c.next++
	id := c.next
	c.pending[id] = ch
	c.mu.Unlock()
	b, _ := json.Marshal(Request{ID: id, Op: op, Args: raw})
	b = append(b, '\n')
	c.wmu.Lock()
	_, werr := c.w.Write(b)
	c.wmu.Unlock()
	if werr != nil {
		c.forget(id)
		return fmt.Errorf("%w: %v", ErrClosed, werr)
	}
	select {
	case resp := <-ch:
		if resp.Error != "" {
			return errors.New(resp.Error)
		}
		if out != nil {
			return json.Unmarshal(resp.Result, out)
		}
		return nil
	case <-c.done:
		c.forget(id)
		return fmt.Errorf("%w (%v)", ErrClosed, c.err)
	case <-ctx.Done():
		c.forget(id)
		return ctx.Err()
	}
}

func (c *Client) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// Close ends the session: the agent sees EOF, cancels its probes and exits.
func (c *Client) Close() error { return c.w.Close() }

// Done is closed when the agent's output ends.
func (c *Client) Done() <-chan struct{} { return c.done }
