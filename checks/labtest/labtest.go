// Package labtest builds what end-to-end tests of the check need: an
// lvsdoctor binary for the agents and the lab's services, and labs with
// unique names that are torn down even when a test fails.
package labtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/lvsdoctor/lvsdoctor/lvs/lab"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
)

// BuildBinary builds cmd/lvsdoctor into dir and points the agent transport
// and the lab's services at it: a test binary cannot act as either.
func BuildBinary(dir string) (string, error) {
	bin := filepath.Join(dir, "lvsdoctor")
	// Built as the README builds it: without symbol table and DWARF,
	// which halves what an SSH check uploads.
	cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", bin, "github.com/lvsdoctor/lvsdoctor/cmd/lvsdoctor")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	os.Setenv("LVSDOCTOR_AGENT", bin)
	lab.ServeCommand = func() []string { return []string{bin, "lab", "serve"} }
	return bin, nil
}

// Main is a TestMain body: it builds the binary, runs the tests, removes
// the binary.
func Main(m *testing.M) int {
	dir, err := os.MkdirTemp("", "lvsdoctor-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The SSH transport keeps the compressed agent in the user's cache:
	// tests keep theirs here, and it goes with the rest (the go command's
	// own cache stays where it was).
	if os.Getenv("GOCACHE") == "" {
		if d, err := os.UserCacheDir(); err == nil {
			os.Setenv("GOCACHE", filepath.Join(d, "go-build"))
		}
	}
	os.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	if _, err := BuildBinary(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// Name is a fresh lab name.
func Name() string {
	b := make([]byte, 3)
	rand.Read(b)
	return "lvsdt" + hex.EncodeToString(b)
}

// Up builds a lab, registers its teardown, and returns its topology.
func Up(t testing.TB, o lab.Options) (*lab.State, *topology.Topology) {
	t.Helper()
	if o.Name == "" {
		o.Name = Name()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	t.Cleanup(func() {
		if err := lab.Down(o.Name); err != nil {
			t.Errorf("lab down %s: %v", o.Name, err)
		}
	})
	st, err := lab.Up(ctx, o)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	path := filepath.Join(t.TempDir(), "lab.yaml")
	if err := st.WriteTopologyFile(path); err != nil {
		t.Fatal(err)
	}
	top, err := topology.Load(path)
	if err != nil {
		t.Fatalf("the lab's own topology file does not parse: %v", err)
	}
	return st, top
}
