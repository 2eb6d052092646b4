package transport

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSendChunks reads what send writes as the setup script does, and
// acknowledges each chunk: the framing, at most uploadInFlight chunks
// unacknowledged, the progress it reports, and the bytes themselves.
func TestSendChunks(t *testing.T) {
	data := bytes.Repeat([]byte("lvsdoctor\x00"), (5*uploadChunk/2)/10+1) // 2.5 chunks
	k := &packed{packing: packZstd, data: data, size: int64(len(data)), hash: "abc"}
	pr, pw := io.Pipe()
	acks := make(chan struct{}, 64)
	var progress []int64
	done := make(chan error, 1)
	go func() {
		done <- k.send(pw, acks, func(n int64) { progress = append(progress, n) })
		pw.Close()
	}()
	// The script's side, on its own goroutine: each chunk read whole.
	type chunk struct {
		b   []byte
		err error
	}
	chunks := make(chan chunk)
	go func() {
		defer close(chunks)
		r := bufio.NewReader(pr)
		head, _ := r.ReadString('\n')
		if want := fmt.Sprintf("upload zst %d abc\n", len(data)); head != want {
			chunks <- chunk{err: fmt.Errorf("first line %q, want %q", head, want)}
			return
		}
		for {
			l, err := r.ReadString('\n')
			var n int
			if _, serr := fmt.Sscanf(l, "%d", &n); err != nil || serr != nil {
				chunks <- chunk{err: fmt.Errorf("chunk line %q: %v %v", l, err, serr)}
				return
			}
			if n == 0 {
				return
			}
			b := make([]byte, n)
			if _, err := io.ReadFull(r, b); err != nil {
				chunks <- chunk{err: err}
				return
			}
			chunks <- chunk{b: b}
		}
	}()
	next := func(wait time.Duration) (chunk, bool) {
		select {
		case c, ok := <-chunks:
			if c.err != nil {
				t.Fatal(c.err)
			}
			return c, ok
		case <-time.After(wait):
			return chunk{}, false
		}
	}
	var got []byte
	for i := 0; i < uploadInFlight; i++ {
		c, ok := next(5 * time.Second)
		if !ok {
			t.Fatalf("chunk %d did not come", i)
		}
		got = append(got, c.b...)
	}
	if _, ok := next(100 * time.Millisecond); ok {
		t.Fatalf("a chunk came with %d unacknowledged", uploadInFlight)
	}
	for {
		acks <- struct{}{}
		c, ok := next(5 * time.Second)
		if !ok {
			break
		}
		got = append(got, c.b...)
	}
	for i := 1; i < uploadInFlight; i++ {
		acks <- struct{}{}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("the host got %d bytes, not the %d sent", len(got), len(data))
	}
	want := []int64{uploadChunk, 2 * uploadChunk, int64(len(data))}
	if fmt.Sprint(progress) != fmt.Sprint(want) {
		t.Errorf("progress %v, want %v", progress, want)
	}
}

// TestSendHostStops: a script that stops (acks closed) ends the upload
// with an error, not a hang, whether it stops mid-way or before the last
// chunk is acknowledged.
func TestSendHostStops(t *testing.T) {
	data := bytes.Repeat([]byte{1}, 3*uploadChunk)
	k := &packed{packing: packGzip, data: data, size: int64(len(data)), hash: "abc"}
	acks := make(chan struct{})
	close(acks)
	done := make(chan error, 1)
	go func() { done <- k.send(io.Discard, acks, func(int64) {}) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "stopped reading") {
			t.Fatalf("got %v, want the host named as having stopped", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("send hangs on a host that stopped")
	}
}

// TestSelfHashRemembered: the binary's hash is read back from the cache
// while the file stays the same, and hashed again once it changes.
func TestSelfHashRemembered(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	bin := filepath.Join(t.TempDir(), "lvsdoctor")
	if err := os.WriteFile(bin, []byte("build one"), 0o700); err != nil {
		t.Fatal(err)
	}
	p, err := hashSelf(bin)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%x", sha256.Sum256([]byte("build one"))); p.hash != want {
		t.Fatalf("hash %s, want %s", p.hash, want)
	}
	st, _ := os.Stat(bin)
	memo := selfHashFile(st)
	if b, err := os.ReadFile(memo); err != nil || string(b) != p.hash {
		t.Fatalf("not remembered in %s: %q %v", memo, b, err)
	}
	// What the cache says is what a run uses: no hashing.
	fake := strings.Repeat("ab", 32)
	if err := os.WriteFile(memo, []byte(fake), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, _ := hashSelf(bin); p.hash != fake {
		t.Errorf("hash %s, want the remembered %s", p.hash, fake)
	}
	// A changed binary is hashed again, and the old note goes (a new
	// size here: two writes within a clock tick may share their times).
	if err := os.WriteFile(bin, []byte("build two, longer"), 0o700); err != nil {
		t.Fatal(err)
	}
	p, _ = hashSelf(bin)
	if want := fmt.Sprintf("%x", sha256.Sum256([]byte("build two, longer"))); p.hash != want {
		t.Errorf("after a change: hash %s, want %s", p.hash, want)
	}
	if _, err := os.Stat(memo); !os.IsNotExist(err) {
		t.Errorf("the old build's note is left: %v", err)
	}
}

// TestCompressLeavesNothing: the controller's compressed copy has no name
// in the cache until it is whole, so a run that ends while compressing
// leaves nothing there; a finished one leaves the one named copy.
func TestCompressLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	f, named, err := createUnnamed(dir)
	if err != nil {
		t.Fatal(err)
	}
	if named {
		f.Close()
		t.Skipf("%s cannot hold unnamed files (O_TMPFILE): compression goes by a .part file there", dir)
	}
	if _, err := f.WriteString("half a copy"); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a copy being written shows in the cache: %v", ents)
	}
	f.Close() // the run ends here
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("an abandoned copy is left: %v", ents)
	}

	bin := filepath.Join(t.TempDir(), "lvsdoctor")
	if err := os.WriteFile(bin, bytes.Repeat([]byte("lvsdoctor"), 1000), 0o700); err != nil {
		t.Fatal(err)
	}
	p := payload{path: bin, hash: strings.Repeat("c", 64), size: 9000}
	k, err := p.compressTo(packZstd, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer k.f.Close()
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || filepath.Join(dir, ents[0].Name()) != k.file {
		t.Errorf("cache holds %v, want only %s", ents, k.file)
	}
	if again, err := p.compressTo(packZstd, dir); err != nil || again.file != k.file {
		t.Errorf("compressed again: %v %v", again, err)
	} else {
		again.f.Close()
	}
}
