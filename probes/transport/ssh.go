package transport

import (
	"bufio"
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
	"slices"
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
	started  bool   // the agent runs: the setup script removes its directory
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

// setupScript is the one session that sets up and then runs the agent:
// it reports what the controller must know (architecture, root or sudo,
// a cached copy, a private directory), waits for a line on stdin that
// says what to do ("upload N" then "run", "run", "verify-run" or "quit"),
// reads an upload of exactly N bytes from the same stdin, and finally
// execs the agent on that stdin and stdout. Every session costs sshd a
// fork and a shell, and more sessions cost more round trips: one session
// per host is what keeps a check over SSH close to one over netns.
// `read` takes one byte at a time from a pipe and `head -c N` stops at N,
// and the controller sends nothing more until the script answers, so
// nothing meant for the agent is swallowed by the setup.
const setupScript = `umask 077
S=; D=; P=%[1]s
echo "@arch $(uname -m)"; echo "@uid $(id -u)"
if [ "$(id -u)" != 0 ]; then
  if m=$(sudo -n true 2>&1); then S="sudo -n"; echo "@sudo ok"; else echo "@sudo fail" $m; exit 0; fi
fi
case %[2]s in
keep) if [ -x "$P" ] && [ "$(wc -c < "$P")" = %[3]d ]; then echo "@cache hit"; fi ;;
temp) D=$(mktemp -d /tmp/lvsdoctor.XXXXXXXX) || { echo "@dir fail"; exit 0; }; P=$D/lvsdoctor; echo "@dir $D" ;;
esac
echo "@wait"
quit() { [ -n "$D" ] && rm -rf "$D"; exit 0; }
read -r cmd n || quit
if [ "$cmd" = upload ]; then
  mkdir -p -m 700 "$(dirname "$P")" && t=$(mktemp "$P.part.XXXXXX") || { echo "@upload fail cannot create $(dirname "$P")"; quit; }
  if head -c "$n" | gzip -dc > "$t" && chmod 700 "$t" && mv -f "$t" "$P"; then echo "@hash $(sha256sum "$P" | cut -c1-64)"; else rm -f "$t"; echo "@upload fail"; quit; fi
  read -r cmd n || quit
fi
case $cmd in run|verify-run) ;; *) quit ;; esac
if [ "$cmd" = verify-run ] && ! out=$($S "$P" version 2>&1); then echo "@noexec" $out; quit; fi
echo "@ready"
if [ -n "$D" ]; then $S "$P" agent; rc=$?; rm -rf "$D"; exit $rc; fi
exec $S "$P" agent
`

// startAgent puts lvsdoctor on the host (unless told where one is),
// checks it can run there as root, and starts it, all on one session
// (setupScript) whose stdin and stdout then carry the agent protocol. An
// uploaded agent in a private directory is removed by the script when the
// agent exits, so a dropped connection leaves nothing behind.
func (sc *sshConn) startAgent(ctx context.Context, o SSHOptions) (io.WriteCloser, io.Reader, error) {
	p, err := loadPayload()
	if err != nil && o.AgentPath == "" {
		return nil, nil, err
	}
	mode, path := "temp", ""
	switch {
	case o.AgentPath != "":
		mode, path = "given", shellQuote(o.AgentPath)
	case sc.keep:
		mode, path = "keep", `"$HOME/.cache/lvsdoctor/lvsdoctor-`+p.hash[:16]+`"`
	default:
		// Every host needs the upload: compress it while the session
		// starts rather than after the host has answered.
		go p.gz()
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
	// sshd's notices ("Could not chdir to home directory") and a failing
	// command's complaint go to stderr: kept (bounded) for the messages.
	stderr := &tailBuffer{max: 4096}
	s.Stderr = stderr
	if err := s.Start(fmt.Sprintf(setupScript, path, mode, p.size)); err != nil {
		return nil, nil, err
	}
	out := bufio.NewReader(stdout)
	got := map[string]string{}
	// answer reads the script's "@key value" lines up to one of the keys
	// in until, bounded by the timeout: a host that stalls mid-setup
	// must not hang the check.
	answer := func(until ...string) (string, error) {
		type line struct {
			s   string
			err error
		}
		for {
			ch := make(chan line, 1)
			go func() {
				l, err := out.ReadString('\n')
				ch <- line{strings.TrimSpace(l), err}
			}()
			var l line
			select {
			case l = <-ch:
			case <-time.After(sc.timeout):
				return "", fmt.Errorf("the setup commands did not answer within %s", sc.timeout)
			case <-ctx.Done():
				return "", ctx.Err()
			}
			if k, v, _ := strings.Cut(l.s, " "); strings.HasPrefix(k, "@") {
				got[k[1:]] = strings.TrimSpace(v)
				if slices.Contains(until, k[1:]) || k == "@upload" || k == "@noexec" || k == "@dir" && v == "fail" {
					return k[1:], nil
				}
			}
			if l.err != nil {
				if st := strings.TrimSpace(stderr.String()); st != "" {
					return "", fmt.Errorf("cannot run commands: %s", st)
				}
				return "", fmt.Errorf("cannot run commands: the session ended (%v)", l.err)
			}
		}
	}
	say := func(line string) error {
		_, err := io.WriteString(stdin, line+"\n")
		return err
	}
	_, err = answer("wait")
	if err != nil && got["sudo"] == "" && got["dir"] == "" {
		return nil, nil, err
	}
	if got["arch"] == "" || got["uid"] == "" {
		return nil, nil, fmt.Errorf("unexpected answer to the setup commands: %q", got)
	}
	if got["uid"] != "0" {
		if st := got["sudo"]; st != "ok" {
			if strings.Contains(st, "password") {
				return nil, nil, fmt.Errorf("sudo wants a password: the agent must run as root; allow `sudo -n` for this user (NOPASSWD) or log in as root")
			}
			return nil, nil, fmt.Errorf("sudo -n does not work: %s", strings.TrimPrefix(st, "fail "))
		}
	}
	if got["dir"] == "fail" {
		return nil, nil, fmt.Errorf("cannot create a private directory in /tmp")
	}
	if mode == "temp" {
		sc.dir = got["dir"]
	} else if mode == "keep" {
		sc.dir = "$HOME/.cache/lvsdoctor"
	}
	run := "verify-run"
	switch {
	case mode == "given":
	case goarch[got["arch"]] != runtime.GOARCH:
		say("quit")
		return nil, nil, fmt.Errorf("the host runs %s, this lvsdoctor is linux/%s: build lvsdoctor for that host and pass its path with --agent", got["arch"], runtime.GOARCH)
	case got["cache"] == "hit":
		// A cached copy of this hash was checked when it was uploaded,
		// and has run before.
		run = "run"
	default:
		gz, err := p.gz()
		if err != nil {
			say("quit")
			return nil, nil, fmt.Errorf("compressing the agent: %w", err)
		}
		if err := say(fmt.Sprintf("upload %d", len(gz))); err != nil {
			return nil, nil, err
		}
		// The write blocks while the host does not read: bounded like
		// every other remote step, with room for a slow link.
		wrote := make(chan error, 1)
		go func() { _, err := stdin.Write(gz); wrote <- err }()
		select {
		case err := <-wrote:
			if err != nil {
				return nil, nil, fmt.Errorf("uploading the agent: %w", err)
			}
		case <-time.After(4 * sc.timeout):
			return nil, nil, fmt.Errorf("uploading the agent (%d bytes) did not finish within %s", len(gz), 4*sc.timeout)
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		if k, err := answer("hash"); err != nil {
			return nil, nil, fmt.Errorf("uploading the agent: %w", err)
		} else if k != "hash" {
			return nil, nil, fmt.Errorf("uploading the agent: %s %s", got["upload"], strings.TrimSpace(stderr.String()))
		}
		if got["hash"] != p.hash {
			say("quit")
			return nil, nil, fmt.Errorf("the uploaded agent's hash does not match (%s)", got["hash"])
		}
	}
	if err := say(run); err != nil {
		return nil, nil, err
	}
	switch k, err := answer("ready"); {
	case err != nil:
		return nil, nil, err
	case k == "noexec":
		// A fresh upload or a given path must be shown to run (a noexec
		// mount, a broken copy).
		if strings.Contains(got["noexec"], "ermission denied") {
			return nil, nil, fmt.Errorf("the agent cannot be executed there (a noexec mount?): pass a copy in an executable place with --agent PATH")
		}
		return nil, nil, fmt.Errorf("the agent does not run there: %s", got["noexec"])
	}
	sc.started = true
	return stdin, out, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// payload is this lvsdoctor, hashed once per run and compressed once,
// only when some host needs a copy (a --keep-agent cache hit needs just
// the hash), however many hosts it goes to. Both stream from the file: the
// binary itself is never held in memory, which keeps the controller in
// its budget.
type payload struct {
	path string
	hash string
	size int64
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
		n, err := io.Copy(h, f)
		if err != nil {
			payloadErr = err
			return
		}
		payloadVal = payload{path: bin, hash: hex.EncodeToString(h.Sum(nil)), size: n}
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

// close ends the agent (EOF on its stdin), removes what was uploaded
// unless it is to be kept, and closes every connection.
func (sc *sshConn) close() error {
	sc.once.Do(func() {
		if sc.session != nil {
			sc.session.Close()
		}
		if sc.dir != "" && !sc.keep && !sc.started && len(sc.clients) > 0 {
			// The setup script removes it when the agent exits, and on
			// every way out it foresaw; this covers a setup cut short.
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
