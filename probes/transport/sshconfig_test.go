package transport

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/crypto/ssh"
)

// KexAlgorithms is read as OpenSSH reads it, relative to lvsdoctor's own
// order where it says so.
func TestKexFrom(t *testing.T) {
	p256, x25519, mlkem := ssh.KeyExchangeECDHP256, ssh.KeyExchangeCurve25519, ssh.KeyExchangeMLKEM768X25519
	for _, c := range []struct {
		v    string
		want func([]string) bool
	}{
		{"", func(k []string) bool { return slices.Equal(k, defaultKex) }},
		{"curve25519-sha256", func(k []string) bool { return slices.Equal(k, []string{x25519}) }},
		{"curve25519-sha256,ecdh-sha2-nistp256", func(k []string) bool { return slices.Equal(k, []string{x25519, p256}) }},
		{"^curve25519-sha256", func(k []string) bool { return k[0] == x25519 && len(k) == len(defaultKex) }},
		{"-ecdh-sha2-*", func(k []string) bool { return !slices.Contains(k, p256) && k[0] == mlkem && k[1] == x25519 }},
		{"+diffie-hellman-group16-sha512", func(k []string) bool {
			return k[len(k)-1] == "diffie-hellman-group16-sha512" && len(k) == len(defaultKex)+1
		}},
	} {
		if got := kexFrom(c.v); !c.want(got) {
			t.Errorf("KexAlgorithms %q: %v", c.v, got)
		}
	}
}

func TestResolveKexAlgorithms(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config")
	err := os.WriteFile(cfg, []byte("Host old\n  KexAlgorithms curve25519-sha256\nHost *\n  User root\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	c, err := loadSSHConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string][]string{"old": {ssh.KeyExchangeCurve25519}, "new": defaultKex} {
		tg, err := c.resolve(host, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(tg.Kex, want) {
			t.Errorf("%s: key exchanges %v, want %v", host, tg.Kex, want)
		}
	}
}
