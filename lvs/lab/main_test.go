package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
)

// TestMain lets the test binary act as "lvsdoctor lab serve": the lab
// starts real-server services with ServeCommand, which here re-executes the
// test binary with LVSDOCTOR_LAB_SERVE=1.
func TestMain(m *testing.M) {
	if os.Getenv("LVSDOCTOR_LAB_SERVE") == "1" {
		o, err := ParseServeArgs(os.Args[1:])
		if err == nil {
			err = Serve(context.Background(), o)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Setenv("LVSDOCTOR_LAB_SERVE", "1") // inherited by the service processes only
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ServeCommand = func() []string { return []string{exe} }
	os.Exit(m.Run())
}

func testName(t *testing.T) string {
	b := make([]byte, 3)
	rand.Read(b)
	return "lvsdt" + hex.EncodeToString(b)
}
