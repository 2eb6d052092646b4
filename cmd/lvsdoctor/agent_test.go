package main

import (
	"errors"
	"os"
	"testing"
	"time"
)

// A pipe becomes a file the netpoller waits on (deadlines work only
// there); a regular file is left as it is.
func TestPollable(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// As a child inherits it: blocking, not in the netpoller.
	blocking := os.NewFile(r.Fd(), "stdin")
	p := pollable(blocking)
	if p == blocking {
		t.Fatal("a pipe was not made pollable")
	}
	if err := p.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatalf("deadline on the pollable pipe: %v", err)
	}
	if _, err := p.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read from an empty pipe: %v, want the deadline", err)
	}
	p.SetReadDeadline(time.Time{})
	w.Write([]byte("x"))
	if b := make([]byte, 1); func() bool { n, err := p.Read(b); return n != 1 || err != nil }() {
		t.Fatal("the pollable pipe does not read what was written")
	}
	f, err := os.CreateTemp(t.TempDir(), "regular")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if pollable(f) != f {
		t.Error("a regular file was changed")
	}
}
