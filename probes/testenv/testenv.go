// Package testenv decides whether a test that needs root or a system
// package may run here. On a developer laptop such tests skip with the
// reason; with LVSDOCTOR_REQUIRE_ALL=1 (set by .ci/run) they fail instead,
// so CI can never pass by skipping.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Strict reports whether skipping is forbidden.
func Strict() bool { return os.Getenv("LVSDOCTOR_REQUIRE_ALL") == "1" }

func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if Strict() {
		t.Fatalf("LVSDOCTOR_REQUIRE_ALL=1 but: "+format, args...)
	}
	t.Skipf(format, args...)
}

// RequireRoot skips (or fails under LVSDOCTOR_REQUIRE_ALL=1) unless the
// test runs as root, which namespaces, raw sockets and nftables need
// (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW): run the tests with sudo")
	}
}

// RequireCommand skips (or fails) unless name is on PATH; pkg names the
// Debian package that provides it.
func RequireCommand(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		skipOrFail(t, "needs %s (apt-get install %s)", name, pkg)
	}
	return p
}
