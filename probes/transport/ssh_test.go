package transport

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/lvsdoctor/lvsdoctor/probes/agent"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
)

// sshd is a real OpenSSH server on a loopback port, with its own host key
// and authorized key, run for one test.
type sshd struct {
	port       int
	dir        string
	clientKey  string // private key authorized for root
	knownHosts string // a known_hosts file with the server's key
}

func startSSHD(t *testing.T) *sshd {
	t.Helper()
	testenv.RequireRoot(t)
	bin := testenv.RequireCommand(t, "sshd", "openssh-server")
	keygen := testenv.RequireCommand(t, "ssh-keygen", "openssh-client")
	if os.Getenv("LVSDOCTOR_AGENT") == "" {
		t.Fatal("TestMain did not build the agent")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	gen := func(name string) {
		if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, name)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v %s", err, out)
		}
	}
	gen("host_key")
	gen("client_key")
	pub, _ := os.ReadFile(filepath.Join(dir, "client_key.pub"))
	os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600)
	// sshd reads a user's authorized keys as that user: logins other
	// than root need a copy they can reach.
	shared, err := os.MkdirTemp("", "lvsdoctor-sshkeys")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shared) })
	os.Chmod(shared, 0o755)
	os.WriteFile(filepath.Join(shared, "authorized_keys"), pub, 0o644)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := fmt.Sprintf(`ListenAddress 127.0.0.1:%d
HostKey %s/host_key
AuthorizedKeysFile %s/authorized_keys %s/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
PidFile %s/sshd.pid
LogLevel ERROR
`, port, dir, dir, shared, dir)
	os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(conf), 0o600)
	os.MkdirAll("/run/sshd", 0o755) // privilege separation directory
	cmd := exec.Command(bin, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not listen: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	hostPub, _ := os.ReadFile(filepath.Join(dir, "host_key.pub"))
	kh := filepath.Join(dir, "known_hosts")
	os.WriteFile(kh, []byte(fmt.Sprintf("[127.0.0.1]:%d %s", port, hostPub)), 0o600)
	return &sshd{port: port, dir: dir, clientKey: filepath.Join(dir, "client_key"), knownHosts: kh}
}

// config writes an ssh_config with the alias "lvs-test" for the server,
// and "lvs-jumped" for the same server reached through itself as a jump
// host (ProxyJump).
func (s *sshd) config(t *testing.T, knownHosts string, extra ...string) string {
	p := filepath.Join(s.dir, "ssh_config")
	c := strings.Join(extra, "\n") + fmt.Sprintf(`
Host lvs-test lvs-jumped
  HostName 127.0.0.1
  Port %d
  User root
  IdentityFile %s
  IdentitiesOnly yes
  UserKnownHostsFile %s
Host lvs-jumped
  ProxyJump lvs-test
`, s.port, s.clientKey, knownHosts)
	os.WriteFile(p, []byte(c), 0o600)
	return p
}

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	if os.Geteuid() == 0 && os.Getenv("LVSDOCTOR_AGENT") == "" {
		dir, err := os.MkdirTemp("", "lvsdoctor-agent")
		if err == nil {
			defer os.RemoveAll(dir)
			bin := filepath.Join(dir, "lvsdoctor")
			out, err := exec.Command("go", "build", "-o", bin, "github.com/lvsdoctor/lvsdoctor/cmd/lvsdoctor").CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
				return 1
			}
			os.Setenv("LVSDOCTOR_AGENT", bin)
		}
	}
	// The compressed agent that the controller keeps goes to a cache of
	// the tests' own, not the user's (set after the build: Go's build
	// cache lives there too).
	if cache, err := os.MkdirTemp("", "lvsdoctor-cache"); err == nil {
		defer os.RemoveAll(cache)
		os.Setenv("XDG_CACHE_HOME", cache)
	}
	return m.Run()
}

// TestSSHAgent reaches a real sshd by an ssh_config alias, directly and
// through a ProxyJump, uploads the agent, runs a probe, and leaves nothing
// behind.
func TestSSHAgent(t *testing.T) {
	s := startSSHD(t)
	for _, alias := range []string{"lvs-test", "lvs-jumped"} {
		t.Run(alias, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := DialWith(ctx, alias, Options{SSH: SSHOptions{ConfigFile: s.config(t, s.knownHosts)}})
			if err != nil {
				t.Fatal(err)
			}
			if c.Hello.Version != agent.Version || c.Hello.PID == 0 {
				t.Errorf("hello: %+v", c.Hello)
			}
			var rg obs.RouteGet
			if err := c.Call(ctx, agent.OpRouteGet, obs.RouteGetArgs{Dst: "127.0.0.1"}, &rg); err != nil || rg.Type != "local" {
				t.Errorf("routeget over ssh: %+v %v", rg, err)
			}
			pid := c.Hello.PID
			dir := c.remoteDir
			if !strings.HasPrefix(dir, "/tmp/lvsdoctor.") {
				t.Errorf("agent uploaded to %q, want a /tmp/lvsdoctor.* directory", dir)
			}
			c.Close()
			time.Sleep(200 * time.Millisecond)
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
				t.Errorf("agent pid %d still running after Close", pid)
			}
			// Its own directory, not a count: other tests (the lab's SSH
			// end-to-end tests) may upload agents at the same time.
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("%s left on the host", dir)
			}
		})
	}
}

// TestSSHErrors: each failure gives its own clear message, promptly.
func TestSSHErrors(t *testing.T) {
	s := startSSHD(t)
	otherKey := filepath.Join(s.dir, "other_key")
	exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", otherKey).Run()
	changed := filepath.Join(s.dir, "known_hosts_changed")
	otherPub, _ := os.ReadFile(otherKey + ".pub")
	os.WriteFile(changed, []byte(fmt.Sprintf("[127.0.0.1]:%d %s", s.port, otherPub)), 0o600)

	// A server that accepts and then never speaks.
	stall, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stall.Close()
	go func() {
		for {
			c, err := stall.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	// A login without a sudoers entry: sudo -n asks for a password
	// before it looks at sudoers.
	useradd := testenv.RequireCommand(t, "useradd", "passwd")
	user := fmt.Sprintf("lvsdn%d", os.Getpid()%100000)
	if out, err := exec.Command(useradd, "-M", "-N", "-d", "/nonexistent", "-s", "/bin/sh", "-p", "*", user).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", user).Run() })
	nopw := fmt.Sprintf("Host lvs-nopw\n  HostName 127.0.0.1\n  Port %d\n  User %s\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n", s.port, user, s.clientKey, s.knownHosts)

	// What a noexec mount does to a binary: execve refuses, even root.
	notExec := filepath.Join(s.dir, "not-executable")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)

	// A binary built with cgo on a host without its C library (musl, as
	// on Alpine): execve cannot find the program interpreter.
	noLoader := withoutInterpreter(t, s.dir)

	cases := []struct {
		name, spec, want string
		cfg              func() string
		opt              SSHOptions
	}{
		{"sudo wants a password", "lvs-nopw", "sudo wants a password", func() string { return s.config(t, s.knownHosts, nopw) }, SSHOptions{}},
		{"agent not executable", "lvs-test", "cannot be executed there", func() string { return s.config(t, s.knownHosts) }, SSHOptions{AgentPath: notExec}},
		{"agent not there", "lvs-test", "has no /nonexistent/lvsdoctor", func() string { return s.config(t, s.knownHosts) }, SSHOptions{AgentPath: "/nonexistent/lvsdoctor"}},
		{"no C library loader", "lvs-test", "program interpreter", func() string { return s.config(t, s.knownHosts) }, SSHOptions{AgentPath: noLoader}},
		{"wrong key", "lvs-test", "refused every key", func() string {
			p := s.config(t, s.knownHosts)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, []byte(strings.ReplaceAll(string(b), s.clientKey, otherKey)), 0o600)
			return p
		}, SSHOptions{}},
		{"unknown host key", "lvs-test", "unknown host key", func() string { return s.config(t, filepath.Join(s.dir, "empty_known_hosts")) }, SSHOptions{}},
		{"changed host key", "lvs-test", "HOST KEY CHANGED", func() string { return s.config(t, changed) }, SSHOptions{}},
		{"host down", fmt.Sprintf("ssh://root@127.0.0.1:%d", closedPort), "connection refused", func() string { return s.config(t, s.knownHosts) }, SSHOptions{}},
		{"stalled sshd", "lvs-stall", "did not complete the SSH handshake", func() string {
			return s.config(t, s.knownHosts, fmt.Sprintf("Host lvs-stall\n  HostName 127.0.0.1\n  Port %d\n  IdentityFile %s\n", stall.Addr().(*net.TCPAddr).Port, s.clientKey))
		}, SSHOptions{Timeout: time.Second}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := c.opt
			o.ConfigFile = c.cfg()
			start := time.Now()
			conn, err := DialWith(context.Background(), c.spec, Options{SSH: o})
			if err == nil {
				conn.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to say %q", err, c.want)
			}
			t.Logf("%v", err)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}

	t.Run("accept new host key", func(t *testing.T) {
		kh := filepath.Join(s.dir, "kh_new")
		c, err := DialWith(context.Background(), "lvs-test", Options{SSH: SSHOptions{ConfigFile: s.config(t, kh), AcceptNewHostKeys: true}})
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		b, _ := os.ReadFile(kh)
		if !strings.Contains(string(b), "ssh-ed25519") {
			t.Fatalf("known_hosts not written: %q", b)
		}
		// The recorded key is now trusted without the flag.
		c, err = DialWith(context.Background(), "lvs-test", Options{SSH: SSHOptions{ConfigFile: s.config(t, kh)}})
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
}

// withoutInterpreter copies a dynamically linked program of this machine
// into dir with its program interpreter renamed to one that does not
// exist, and returns the copy's path.
func withoutInterpreter(t *testing.T, dir string) string {
	t.Helper()
	src, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const gone = "/nonexistent/ld.so"
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP || p.Filesz <= uint64(len(gone)) {
			continue
		}
		interp := b[p.Off : p.Off+p.Filesz]
		copy(interp, gone)
		clear(interp[len(gone):])
		out := filepath.Join(dir, "no-loader")
		if err := os.WriteFile(out, b, 0o755); err != nil {
			t.Fatal(err)
		}
		return out
	}
	t.Fatalf("%s has no program interpreter to take away", src)
	return ""
}

// TestSSHKeepAgentShared: hosts that share a home directory (NFS; the lab,
// whose namespaces share this machine's files) upload the same cached
// agent at once; every upload must succeed, and the next run reuses it.
func TestSSHKeepAgentShared(t *testing.T) {
	s := startSSHD(t)
	cache := hostCache(t)
	cfg := s.config(t, s.knownHosts)
	for round := 0; round < 2; round++ {
		errs := make(chan error, 4)
		for i := 0; i < 4; i++ {
			go func() {
				errs <- dialClose("lvs-test", Options{SSH: SSHOptions{ConfigFile: cfg, KeepAgent: true}})
			}()
		}
		for i := 0; i < 4; i++ {
			if err := <-errs; err != nil {
				t.Errorf("round %d: %v", round, err)
			}
		}
	}
	// The hosts' partial uploads (the controller keeps its own compressed
	// copies elsewhere in the tests, and as .agent-* in this directory
	// when it runs as this user outside them).
	if parts, _ := filepath.Glob(filepath.Join(cache, "lvsdoctor-*.part*")); len(parts) > 0 {
		t.Errorf("partial uploads left: %v", parts)
	}
}

// TestSSHKeepAgentOldCopies: an upload to the cache removes the copies
// other builds left there more than a day ago, and leaves recent ones
// (another build may be running from it) and this build's.
func TestSSHKeepAgentOldCopies(t *testing.T) {
	s := startSSHD(t)
	cache, p := uncachedAgent(t)
	cfg := s.config(t, s.knownHosts)
	if err := os.MkdirAll(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(cache, "lvsdoctor-0000000000000000")
	recent := filepath.Join(cache, "lvsdoctor-1111111111111111")
	for _, f := range []string{old, recent} {
		if err := os.WriteFile(f, []byte("#!/bin/sh\n"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	os.Chtimes(old, time.Now().Add(-49*time.Hour), time.Now().Add(-49*time.Hour))
	os.Chtimes(recent, time.Now().Add(-time.Hour), time.Now().Add(-time.Hour))
	if err := dialClose("lvs-test", Options{SSH: SSHOptions{ConfigFile: cfg, KeepAgent: true}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); err == nil {
		t.Errorf("another build's copy from two days ago is still there")
	}
	for _, f := range []string{recent, filepath.Join(cache, "lvsdoctor-"+p.hash[:16])} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s: %v, want it kept", filepath.Base(f), err)
		}
	}
}

// dialClose reaches spec and closes what it got: whether it could.
func dialClose(spec string, o Options) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := DialWith(ctx, spec, o)
	if err == nil {
		c.Close()
	}
	return err
}

// hostCache is where the test sshd's login keeps agents (this machine's
// ~/.cache/lvsdoctor); what the test adds there goes when it ends.
func hostCache(t *testing.T) string {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(home, ".cache", "lvsdoctor")
	_, statErr := os.Stat(cache)
	before, _ := filepath.Glob(filepath.Join(cache, "lvsdoctor-*"))
	t.Cleanup(func() {
		now, _ := filepath.Glob(filepath.Join(cache, "*"))
		for _, f := range now {
			if !slices.Contains(before, f) {
				os.Remove(f)
			}
		}
		if statErr != nil {
			os.Remove(cache)
		}
	})
	return cache
}

// TestSSHKeepAgentInterrupted: a run stopped mid-upload (Ctrl-C) leaves
// no partial copy in the host's cache.
func TestSSHKeepAgentInterrupted(t *testing.T) {
	s := startSSHD(t)
	cache, _ := uncachedAgent(t)
	cfg := s.config(t, s.knownHosts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		c, err := DialWith(ctx, "lvs-test", Options{SSH: SSHOptions{ConfigFile: cfg, KeepAgent: true}})
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if parts, _ := filepath.Glob(filepath.Join(cache, "*.part*.z")); len(parts) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no upload began within 20 s")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the upload was done before it could be interrupted")
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		parts, _ := filepath.Glob(filepath.Join(cache, "*.part*"))
		if len(parts) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an interrupted upload left %v", parts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// uncachedAgent is the host's cache (hostCache) without this build's
// agent in it, so that the next run uploads one, and this build.
func uncachedAgent(t *testing.T) (string, payload) {
	cache := hostCache(t)
	p, err := loadPayload()
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(cache, "lvsdoctor-"+p.hash[:16]))
	return cache, p
}

// resetUpload forgets the compressed agent, as a new process would.
func resetUpload() {
	packsMu.Lock()
	packs = map[*packing]*packOnce{}
	packsMu.Unlock()
}

// TestSSHAgentCache: the compressed agent is kept in the user's cache
// directory and reused; a damaged copy is never uploaded twice. Hosts
// with zstd get it as zstd, the others as gzip.
func TestSSHAgentCache(t *testing.T) {
	s := startSSHD(t)
	testenv.RequireCommand(t, "zstd", "gzip")
	for _, k := range []*packing{packZstd, packGzip} {
		t.Run(k.ext, func(t *testing.T) {
			if k == packGzip {
				hostZstd = "lvsdoctor-no-such-zstd"
				t.Cleanup(func() { hostZstd = "zstd" })
			}
			testAgentCache(t, s, k)
		})
	}
}

func testAgentCache(t *testing.T, s *sshd, k *packing) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	resetUpload()
	t.Cleanup(resetUpload)
	p, err := loadPayload()
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.config(t, s.knownHosts)
	var (
		mu   sync.Mutex
		said []string
	)
	progress := func(s string) {
		mu.Lock()
		said = append(said, s)
		mu.Unlock()
	}
	dial := func() error {
		mu.Lock()
		said = nil
		mu.Unlock()
		return dialClose("lvs-jumped", Options{SSH: SSHOptions{ConfigFile: cfg, Progress: progress}})
	}
	if err := dial(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if want := "lvs-jumped: uploading lvsdoctor ("; len(said) == 0 || !strings.HasPrefix(said[0], want) || !strings.HasSuffix(said[0], " MB, "+k.ext+")") {
		t.Errorf("progress %q, want %q... MB, %s)", said, want, k.ext)
	}
	mu.Unlock()
	c, ok := p.cached(k)
	if !ok {
		t.Fatalf("no compressed agent in %s", cacheDir())
	}
	file := c.file
	b, _ := os.ReadFile(file)
	zr, err := unpack(k, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, zr); err != nil || hex.EncodeToString(h.Sum(nil)) != p.hash {
		t.Fatalf("the cached copy is not the agent (%v)", err)
	}
	if st, _ := os.Stat(filepath.Dir(file)); st.Mode().Perm() != 0o700 {
		t.Errorf("%s is %v, want 0700", filepath.Dir(file), st.Mode().Perm())
	}

	// Damaged in the middle: the controller does not send it, and makes
	// a new one.
	bad := append([]byte(nil), b...)
	for i := len(bad) / 2; i < len(bad)/2+4096; i++ {
		bad[i] ^= 0x5a
	}
	os.WriteFile(file, bad, 0o600)
	resetUpload()
	if _, ok := p.cached(k); ok {
		t.Fatalf("a damaged copy passed the check")
	}
	if err := dial(); err != nil {
		t.Fatalf("after a damaged copy: %v", err)
	}
	if got, _ := os.ReadFile(file); !bytes.Equal(got, b) {
		t.Errorf("the damaged copy was not replaced")
	}

	// Damaged after the controller checked it (or on the way): the host
	// refuses it by its hash, the run says so, and the next run makes a
	// new one.
	resetUpload()
	if _, err := p.pack(k); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(file, bad, 0o600) // the same file as the open copy
	if err := dial(); err == nil || !strings.Contains(err.Error(), "hash does not match") {
		t.Fatalf("a copy damaged after its check: %v, want the hash refused", err)
	} else {
		t.Logf("%v", err)
	}
	resetUpload()
	if err := dial(); err != nil {
		t.Fatalf("after a damaged copy: %v", err)
	}

	// Bytes that hash to what the name says but do not unpack: the host's
	// unpacker refuses them, the run says so, and the copy is gone for
	// the next one.
	zh := sha256.Sum256(bad)
	odd := filepath.Join(filepath.Dir(file), p.cacheName(k, hex.EncodeToString(zh[:])))
	os.Remove(file)
	os.WriteFile(odd, bad, 0o600)
	resetUpload()
	if err := dial(); err == nil || !strings.Contains(err.Error(), "uploading the agent failed") {
		t.Fatalf("a copy that does not unpack: %v, want the upload to fail", err)
	} else {
		t.Logf("%v", err)
	}
	if _, err := os.Stat(odd); err == nil {
		t.Errorf("the copy that did not unpack is still in the cache")
	}
	resetUpload()
	if err := dial(); err != nil {
		t.Fatalf("after a copy that did not unpack: %v", err)
	}

	// Truncated: not taken for a copy at all.
	os.WriteFile(file, b[:len(b)/2], 0o600)
	resetUpload()
	if err := dial(); err != nil {
		t.Fatalf("after a truncated copy: %v", err)
	}
	if _, ok := p.cached(k); !ok {
		t.Errorf("the truncated copy was not replaced")
	}
	// Another build's copy goes when this one is written.
	other := filepath.Join(filepath.Dir(file), "agent-"+strings.Repeat("0", 64)+"."+k.ext)
	os.WriteFile(other, b, 0o600)
	otherFormat := filepath.Join(filepath.Dir(file), "agent-"+strings.Repeat("1", 64)+"-"+strings.Repeat("2", 64)+".xz")
	os.WriteFile(otherFormat, b, 0o600)
	os.Remove(file)
	resetUpload()
	if err := dial(); err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{other, otherFormat} {
		if _, err := os.Stat(o); err == nil {
			t.Errorf("another build's copy was left in the cache: %s", filepath.Base(o))
		}
	}
}

// unpack reads what k compressed.
func unpack(k *packing, r io.Reader) (io.Reader, error) {
	if k == packGzip {
		return gzip.NewReader(r)
	}
	zr, err := zstd.NewReader(r)
	if err != nil {
		return nil, err
	}
	return zr.IOReadCloser(), nil
}

// TestSSHOtherArch: a host of another architecture is told so, promptly,
// although the upload started along with the setup. (The script stops
// before it makes a directory.)
func TestSSHOtherArch(t *testing.T) {
	s := startSSHD(t)
	archPattern = func() string { return "sparc64" }
	t.Cleanup(func() { archPattern = unamePattern })
	for _, keep := range []bool{false, true} {
		start := time.Now()
		_, err := DialWith(context.Background(), "lvs-jumped", Options{SSH: SSHOptions{ConfigFile: s.config(t, s.knownHosts), KeepAgent: keep}})
		if err == nil || !strings.Contains(err.Error(), "build lvsdoctor for that host") {
			t.Errorf("keep %v: %v, want the architecture named", keep, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("keep %v: took %s", keep, d)
		}
		t.Logf("%v", err)
	}
}

// TestSSHKeepAgentDamaged: a cached agent that no longer runs is named,
// with what to do about it.
func TestSSHKeepAgentDamaged(t *testing.T) {
	s := startSSHD(t)
	p, err := loadPayload()
	if err != nil {
		t.Fatal(err)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(home, ".cache", "lvsdoctor")
	_, statErr := os.Stat(cache)
	copyPath := filepath.Join(cache, "lvsdoctor-"+p.hash[:16])
	_, hadCopy := os.Stat(copyPath)
	t.Cleanup(func() {
		if hadCopy != nil {
			os.Remove(copyPath)
		}
		if statErr != nil {
			os.Remove(cache)
		}
	})
	cfg := s.config(t, s.knownHosts)
	dial := func() error {
		return dialClose("lvs-jumped", Options{SSH: SSHOptions{ConfigFile: cfg, KeepAgent: true}})
	}
	if err := dial(); err != nil {
		t.Fatal(err)
	}
	// Replaced, not truncated: the first run's agent may still be
	// exiting from it.
	b, err := os.ReadFile(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(copyPath+".damaged", b[:4096], 0o700)
	if err := os.Rename(copyPath+".damaged", copyPath); err != nil {
		t.Fatal(err)
	}
	err = dial()
	if err == nil || !strings.Contains(err.Error(), "does not run there") || !strings.Contains(err.Error(), "lvsdoctor-"+p.hash[:16]+") may be damaged") {
		t.Fatalf("a damaged copy: %v, want it named", err)
	}
	t.Logf("%v", err)
	os.Remove(copyPath)
	if err := dial(); err != nil {
		t.Fatalf("once the damaged copy is gone: %v", err)
	}
}

// TestAgentStartError: what sudo or the shell says when the agent does
// not start becomes the reason, in lvsdoctor's words.
func TestAgentStartError(t *testing.T) {
	for _, c := range []struct {
		stderr string
		sudo   bool
		want   string
	}{
		{"sudo: a password is required", true, "sudo wants a password"},
		{"sudo: a terminal is required to read the password; either use the -S option to read from standard input or configure an askpass helper", true, "sudo wants a password"},
		{"sudo: sorry, you must have a tty to run sudo", true, "sudo -n does not work: sudo: sorry"},
		{"ops is not in the sudoers file.  This incident will be reported.", true, "sudo -n does not work"},
		{"Sorry, user ops may not run sudo on lb1.", true, "sudo -n does not work"},
		{"sudo: unable to execute /tmp/lvsdoctor.x/lvsdoctor: Permission denied", true, "cannot be executed there"},
		{"sh: 1: exec: /tmp/lvsdoctor.x/lvsdoctor: Permission denied", false, "cannot be executed there"},
		// The setup script saw the file, so what is missing is its loader.
		{"sudo: unable to execute /opt/lvsdoctor: No such file or directory", true, "program interpreter"},
		{"sh: 1: exec: /tmp/lvsdoctor.x/lvsdoctor: not found", false, "CGO_ENABLED=0"},
		{"bash: line 1: /tmp/lvsdoctor.x/lvsdoctor: cannot execute: required file not found", false, "program interpreter"},
		{"/tmp/lvsdoctor.x/lvsdoctor: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.34' not found (required by /tmp/lvsdoctor.x/lvsdoctor)", true, "newer C library"},
		{"sh: 14: sudo: not found", true, "sudo is not installed there"},
		{"sudo: unable to execute /opt/lvsdoctor: Exec format error", true, "build lvsdoctor for that host's architecture"},
		{"", true, "exited without a word"},
	} {
		if err := agentStartError(c.stderr, c.sudo); !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %q, want it to say %q", c.stderr, err, c.want)
		}
	}
}
