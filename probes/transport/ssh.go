package transport

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/lvsdoctor/lvsdoctor/probes/agent"
	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

// SSHOptions shape how ssh:// hosts are reached.
type SSHOptions struct {
	ConfigFile        string        // --ssh-config; "" reads ~/.ssh/config and /etc/ssh/ssh_config
	AcceptNewHostKeys bool          // record unknown host keys, as OpenSSH's accept-new
	KeepAgent         bool          // leave the uploaded agent for the next run
	AgentPath         string        // a copy of lvsdoctor already on the host
	Timeout           time.Duration // every remote step; 0: 10 s
}

// sshConn is an agent reached over SSH: one connection (through any jump
// hosts), one session running the agent, and the sessions that set it up
// and remove it.
type sshConn struct {
	clients  []*ssh.Client // the target
	jumpKeys []string      // the shared jump connections it holds
	session  *ssh.Session
	dir      string // where the uploaded agent lives; "" when not ours
	keep     bool
	timeout  time.Duration
	once     sync.Once
}

func (o SSHOptions) timeout() time.Duration {
	if o.Timeout <= 0 {
		return 10 * time.Second
	}
	return o.Timeout
}

// dialSSH reaches spec, puts the agent there and starts it.
func dialSSH(ctx context.Context, spec string, o SSHOptions) (*Conn, error) {
	cfg, err := loadSSHConfig(o.ConfigFile)
	if err != nil {
		return nil, err
	}
	t, err := cfg.resolve(spec, 0)
	if err != nil {
		return nil, err
	}
	sc := &sshConn{keep: o.KeepAgent, timeout: o.timeout()}
	var prev *ssh.Client
	key := ""
	for _, hop := range t.Jumps {
		key += "|" + hop.User + "@" + hop.Addr()
		c, err := acquireJump(ctx, key, prev, hop, o)
		if err != nil {
			sc.closeClients()
			return nil, fmt.Errorf("jump host %s: %w", hop.Alias, err)
		}
		sc.jumpKeys = append(sc.jumpKeys, key)
		prev = c
	}
	c, err := dialHop(ctx, prev, t, o)
	if err != nil {
		sc.closeClients()
		return nil, err
	}
	sc.clients = append(sc.clients, c)
	stdin, stdout, err := sc.startAgent(ctx, o)
	if err != nil {
		sc.close()
		return nil, err
	}
	return &Conn{Client: agent.NewClient(stdin, stdout), Spec: spec, closer: sc.close, remoteDir: sc.dir}, nil
}

// dialHop opens one SSH connection, directly or through the previous hop,
// with the handshake bounded by the timeout: an sshd that accepts and then
// says nothing must not hang the check.
func dialHop(ctx context.Context, via *ssh.Client, t *sshTarget, o SSHOptions) (*ssh.Client, error) {
	addr := t.Addr()
	var conn net.Conn
	var err error
	dctx, cancel := context.WithTimeout(ctx, o.timeout())
	defer cancel()
	if via == nil {
		var d net.Dialer
		conn, err = d.DialContext(dctx, "tcp", addr)
	} else {
		conn, err = via.DialContext(dctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot connect to %s: %w", addr, err)
	}
	hk, algos, err := hostKeyCheck(t, addr, o.AcceptNewHostKeys)
	if err != nil {
		conn.Close()
		return nil, err
	}
	auths, err := authMethods(t)
	if err != nil {
		conn.Close()
		return nil, err
	}
	cc := &ssh.ClientConfig{User: t.User, Auth: auths, HostKeyCallback: hk, HostKeyAlgorithms: algos, Timeout: o.timeout()}
	_ = conn.SetDeadline(time.Now().Add(o.timeout()))
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cc)
	if err != nil {
		conn.Close()
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			return nil, fmt.Errorf("%s accepted the connection but did not complete the SSH handshake within %s", addr, o.timeout())
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, fmt.Errorf("%s@%s refused every key offered (%s): check IdentityFile and authorized_keys", t.User, addr, strings.Join(t.IdentityFiles, ", "))
		}
		return nil, fmt.Errorf("ssh %s@%s: %w", t.User, addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// hostKeyCheck verifies host keys against known_hosts (hashed entries
// too), offering the server only the algorithms known for it so a host
// with several keys is checked against the one on file.
func hostKeyCheck(t *sshTarget, addr string, acceptNew bool) (ssh.HostKeyCallback, []string, error) {
	var files []string
	for _, f := range t.KnownHosts {
		if _, err := os.Stat(f); err == nil {
			files = append(files, f)
		}
	}
	var db *knownhosts.HostKeyDB
	if len(files) > 0 {
		var err error
		if db, err = knownhosts.NewDB(files...); err != nil {
			return nil, nil, fmt.Errorf("known_hosts: %w", err)
		}
	}
	cb := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		var err error
		if db != nil {
			err = db.HostKeyCallback()(hostname, remote, key)
		} else {
			err = &xknownhosts.KeyError{}
		}
		if err == nil {
			return nil
		}
		fp := ssh.FingerprintSHA256(key)
		var ke *xknownhosts.KeyError
		if errors.As(err, &ke) && len(ke.Want) > 0 {
			w := ke.Want[0]
			return fmt.Errorf("HOST KEY CHANGED for %s: it now offers %s %s, but %s:%d has another key; if the change is expected, remove that line (ssh-keygen -R %s)",
				hostname, key.Type(), fp, w.Filename, w.Line, t.HostName)
		}
		if errors.As(err, &ke) && acceptNew {
			return recordHostKey(t.KnownHosts[0], hostname, remote, key)
		}
		if errors.As(err, &ke) {
			return fmt.Errorf("unknown host key for %s (%s %s): verify it and add it to %s, or run with --accept-new-host-keys", hostname, key.Type(), fp, t.KnownHosts[0])
		}
		return err
	}
	var algos []string
	if db != nil {
		algos = db.HostKeyAlgorithms(addr)
	}
	return cb, algos, nil
}

func recordHostKey(file, hostname string, remote net.Addr, key ssh.PublicKey) error {
	f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("recording the host key of %s: %w", hostname, err)
	}
	defer f.Close()
	return knownhosts.WriteKnownHost(f, hostname, remote, key)
}

// authMethods offers the ssh-agent's keys and the identity files, as
// OpenSSH does; IdentitiesOnly limits the agent to the configured keys.
func authMethods(t *sshTarget) ([]ssh.AuthMethod, error) {
	var signers []ssh.Signer
	var filePubs [][]byte
	for _, f := range t.IdentityFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			// A passphrase-protected key is for the ssh-agent to hold.
			if pb, perr := os.ReadFile(f + ".pub"); perr == nil {
				if pk, _, _, _, perr := ssh.ParseAuthorizedKey(pb); perr == nil {
					filePubs = append(filePubs, pk.Marshal())
				}
			}
			continue
		}
		signers = append(signers, s)
		filePubs = append(filePubs, s.PublicKey().Marshal())
	}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		if c, err := net.Dial("unix", sock); err == nil {
			as, err := sshagent.NewClient(c).Signers()
			if err == nil {
				for _, s := range as {
					if !t.IdentitiesOnly || containsKey(filePubs, s.PublicKey().Marshal()) {
						signers = append(signers, s)
					}
				}
			}
		}
	}
	if len(signers) == 0 {
		return nil, fmt.Errorf("no usable SSH key for %s@%s: tried the ssh-agent and %s", t.User, t.HostName, strings.Join(t.IdentityFiles, ", "))
	}
	return []ssh.AuthMethod{ssh.PublicKeys(signers...)}, nil
}

func containsKey(list [][]byte, k []byte) bool {
	for _, l := range list {
		if bytes.Equal(l, k) {
			return true
		}
	}
	return false
}

// run runs a setup command in its own session, bounded by the timeout.
func (sc *sshConn) run(ctx context.Context, cmd string, stdin io.Reader) (string, error) {
	s, err := sc.target().NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	if stdin != nil {
		s.Stdin = stdin
	}
	type res struct {
		out []byte
		err error
	}
	done := make(chan res, 1)
	// Stdout alone is the answer: sshd writes notices such as "Could not
	// chdir to home directory" to stderr, which only an error shows.
	var stdout, stderr bytes.Buffer
	s.Stdout, s.Stderr = &stdout, &stderr
	go func() {
		err := s.Run(cmd)
		out := stdout.Bytes()
		if err != nil {
			out = append(append(out, '\n'), stderr.Bytes()...)
		}
		done <- res{out, err}
	}()
	select {
	case r := <-done:
		return strings.TrimSpace(string(r.out)), r.err
	case <-time.After(sc.timeout):
		return "", fmt.Errorf("%q did not finish within %s", cmd, sc.timeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (sc *sshConn) target() *ssh.Client { return sc.clients[len(sc.clients)-1] }

// goarch maps `uname -m` to Go's names.
var goarch = map[string]string{"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}

// startAgent puts lvsdoctor on the host (unless told where one is),
// checks it can run there as root, and starts it on a session whose
// stdin/stdout are the agent protocol. A wrapper removes an uploaded agent
// when it exits, so a dropped connection leaves nothing behind.
func (sc *sshConn) startAgent(ctx context.Context, o SSHOptions) (io.WriteCloser, io.Reader, error) {
	p, err := loadPayload()
	if err != nil && o.AgentPath == "" {
		return nil, nil, err
	}
	// One session finds out everything the setup needs (architecture,
	// root or sudo, a cached agent, a private directory): every session
	// costs sshd a fork and a shell, on every host.
	probe := `echo "@arch $(uname -m)"; echo "@uid $(id -u)"; ` +
		`if [ "$(id -u)" != 0 ]; then if m=$(sudo -n true 2>&1); then echo "@sudo ok"; else echo "@sudo fail" $m; fi; fi`
	cache := ""
	switch {
	case o.AgentPath != "":
	case sc.keep:
		cache = "$HOME/.cache/lvsdoctor/lvsdoctor-" + p.hash[:16]
		probe += `; echo "@cache $(sha256sum ` + shellQuote(cache) + ` 2>/dev/null | cut -c1-64)"`
	default:
		probe += `; echo "@dir $(mktemp -d /tmp/lvsdoctor.XXXXXXXX)"`
	}
	out, err := sc.run(ctx, probe, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot run commands: %v (%s)", err, out)
	}
	got := map[string]string{}
	for _, ln := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(ln), " "); ok && strings.HasPrefix(k, "@") {
			got[k[1:]] = strings.TrimSpace(v)
		}
	}
	if got["arch"] == "" || got["uid"] == "" {
		return nil, nil, fmt.Errorf("unexpected answer to the setup commands: %q", out)
	}
	sudo := ""
	if got["uid"] != "0" {
		sudo = "sudo -n "
		if st := got["sudo"]; st != "ok" {
			if strings.Contains(st, "password") {
				return nil, nil, fmt.Errorf("sudo wants a password: the agent must run as root; allow `sudo -n` for this user (NOPASSWD) or log in as root")
			}
			return nil, nil, fmt.Errorf("sudo -n does not work: %s", strings.TrimPrefix(st, "fail "))
		}
	}
	path, verify := o.AgentPath, true
	switch {
	case path != "":
	case goarch[got["arch"]] != runtime.GOARCH:
		return nil, nil, fmt.Errorf("the host runs %s, this lvsdoctor is linux/%s: build lvsdoctor for that host and pass its path with --agent", got["arch"], runtime.GOARCH)
	case sc.keep && got["cache"] == p.hash:
		sc.dir, path, verify = "$HOME/.cache/lvsdoctor", cache, false
	case sc.keep:
		sc.dir, path = "$HOME/.cache/lvsdoctor", cache
		if out, err := sc.run(ctx, "mkdir -p -m 700 "+shellQuote(sc.dir), nil); err != nil {
			return nil, nil, fmt.Errorf("cannot create %s: %v (%s)", sc.dir, err, out)
		}
		if err := sc.send(ctx, p, path); err != nil {
			return nil, nil, err
		}
	default:
		if !strings.HasPrefix(got["dir"], "/tmp/lvsdoctor.") {
			return nil, nil, fmt.Errorf("cannot create a private directory in /tmp: %q", got["dir"])
		}
		sc.dir = got["dir"]
		path = sc.dir + "/lvsdoctor"
		if err := sc.send(ctx, p, path); err != nil {
			return nil, nil, err
		}
	}
	// A fresh upload or a given path must be shown to run (a noexec mount,
	// a broken copy); a cached copy of the same hash already did.
	if verify {
		if out, err := sc.run(ctx, sudo+shellQuote(path)+" version", nil); err != nil {
			if strings.Contains(out, "ermission denied") {
				return nil, nil, fmt.Errorf("%s cannot be executed there (a noexec mount?): pass a copy in an executable place with --agent PATH", path)
			}
			return nil, nil, fmt.Errorf("%s does not run there: %s", path, out)
		}
	}
	s, err := sc.target().NewSession()
	if err != nil {
		return nil, nil, err
	}
	sc.session = s
	stdin, err := s.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	cmd := "exec " + sudo + shellQuote(path) + " agent"
	if sc.dir != "" && !sc.keep {
		cmd = sudo + "sh -c " + shellQuote(fmt.Sprintf("%s agent; rc=$?; rm -rf %s; exit $rc", shellQuote(path), shellQuote(sc.dir)))
	}
	if err := s.Start(cmd); err != nil {
		return nil, nil, err
	}
	return stdin, stdout, nil
}

// payload is this lvsdoctor, hashed once per run and compressed once,
// only when some host needs a copy (a --keep-agent cache hit needs just
// the hash), however many hosts it goes to. Both stream from the file: the
// binary itself is never held in memory, which keeps the controller in
// its budget.
type payload struct {
	path string
	hash string
}

var (
	payloadOnce sync.Once
	payloadVal  payload
	payloadErr  error
	gzOnce      sync.Once
	gzVal       []byte
	gzErr       error
)

func loadPayload() (payload, error) {
	payloadOnce.Do(func() {
		bin, err := AgentBinary()
		if err != nil {
			payloadErr = err
			return
		}
		f, err := os.Open(bin)
		if err != nil {
			payloadErr = err
			return
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			payloadErr = err
			return
		}
		payloadVal = payload{path: bin, hash: hex.EncodeToString(h.Sum(nil))}
	})
	return payloadVal, payloadErr
}

// gz is the payload compressed (the same every time it is asked).
func (p payload) gz() ([]byte, error) {
	gzOnce.Do(func() {
		f, err := os.Open(p.path)
		if err != nil {
			gzErr = err
			return
		}
		defer f.Close()
		var z bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
		if _, err := io.Copy(zw, f); err != nil {
			gzErr = err
			return
		}
		zw.Close()
		gzVal = z.Bytes()
	})
	return gzVal, gzErr
}

func (sc *sshConn) send(ctx context.Context, p payload, path string) error {
	// A temporary name of its own: hosts that share the directory (an NFS
	// home with --keep-agent) may upload the same file at once.
	cmd := fmt.Sprintf(`umask 077; t=$(mktemp %[1]s.part.XXXXXX) || exit 1; if gzip -dc > "$t" && chmod 700 "$t" && mv -f "$t" %[1]s; then sha256sum %[1]s; else rm -f "$t"; exit 1; fi`, path)
	gz, err := p.gz()
	if err != nil {
		return fmt.Errorf("compressing the agent: %w", err)
	}
	out, err := sc.run(ctx, cmd, bytes.NewReader(gz))
	if err != nil {
		return fmt.Errorf("uploading the agent: %v (%s)", err, out)
	}
	if !strings.HasPrefix(out, p.hash) {
		return fmt.Errorf("the uploaded agent's hash does not match (%s)", out)
	}
	return nil
}

// close ends the agent (EOF on its stdin), removes what was uploaded
// unless it is to be kept, and closes every connection.
func (sc *sshConn) close() error {
	sc.once.Do(func() {
		if sc.session != nil {
			sc.session.Close()
		}
		if sc.dir != "" && !sc.keep && len(sc.clients) > 0 {
			// The wrapper already removed it when the agent exited; this
			// covers an agent that never started.
			ctx, cancel := context.WithTimeout(context.Background(), sc.timeout)
			sc.run(ctx, "rm -rf "+shellQuote(sc.dir), nil)
			cancel()
		}
		sc.closeClients()
	})
	return nil
}

func (sc *sshConn) closeClients() {
	for i := len(sc.clients) - 1; i >= 0; i-- {
		sc.clients[i].Close()
	}
	for i := len(sc.jumpKeys) - 1; i >= 0; i-- {
		releaseJump(sc.jumpKeys[i])
	}
	sc.jumpKeys = nil
}

// jumps shares one connection to each jump host among all the hosts
// reached through it, as OpenSSH's ControlMaster would: a bastion in front
// of fifty real servers is dialled and authenticated once, not fifty times.
var jumps = struct {
	sync.Mutex
	m map[string]*jumpConn
}{m: map[string]*jumpConn{}}

type jumpConn struct {
	c     *ssh.Client
	err   error
	refs  int
	ready chan struct{}
}

// acquireJump returns the shared connection for the jump chain key,
// dialling it (through via) if no one has yet.
func acquireJump(ctx context.Context, key string, via *ssh.Client, hop *sshTarget, o SSHOptions) (*ssh.Client, error) {
	jumps.Lock()
	j, ok := jumps.m[key]
	if !ok {
		j = &jumpConn{ready: make(chan struct{})}
		jumps.m[key] = j
	}
	j.refs++
	jumps.Unlock()
	if !ok {
		j.c, j.err = dialHop(ctx, via, hop, o)
		close(j.ready)
	}
	select {
	case <-j.ready:
	case <-ctx.Done():
		releaseJump(key)
		return nil, ctx.Err()
	}
	if j.err != nil {
		releaseJump(key)
		return nil, j.err
	}
	return j.c, nil
}

func releaseJump(key string) {
	jumps.Lock()
	defer jumps.Unlock()
	j, ok := jumps.m[key]
	if !ok {
		return
	}
	j.refs--
	if j.refs > 0 {
		return
	}
	delete(jumps.m, key)
	go func() {
		<-j.ready
		if j.c != nil {
			j.c.Close()
		}
	}()
}

func shellQuote(s string) string {
	if strings.HasPrefix(s, "$HOME/") {
		return `"$HOME"/` + shellQuote(s[len("$HOME/"):])
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
