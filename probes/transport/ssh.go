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
	clients []*ssh.Client // jump hosts first, the target last
	session *ssh.Session
	dir     string // where the uploaded agent lives; "" when not ours
	keep    bool
	timeout time.Duration
	once    sync.Once
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
	for _, hop := range append(append([]*sshTarget{}, t.Jumps...), t) {
		c, err := dialHop(ctx, prev, hop, o)
		if err != nil {
			sc.closeClients()
			if hop != t {
				return nil, fmt.Errorf("jump host %s: %w", hop.Alias, err)
			}
			return nil, err
		}
		sc.clients = append(sc.clients, c)
		prev = c
	}
	stdin, stdout, err := sc.startAgent(ctx, o)
	if err != nil {
		sc.close()
		return nil, err
	}
	return &Conn{Client: agent.NewClient(stdin, stdout), Spec: spec, closer: sc.close}, nil
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
	go func() {
		out, err := s.CombinedOutput(cmd)
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
	facts, err := sc.run(ctx, "uname -m; id -u", nil)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot run commands: %v (%s)", err, facts)
	}
	lines := strings.Fields(facts)
	if len(lines) < 2 {
		return nil, nil, fmt.Errorf("unexpected answer to uname/id: %q", facts)
	}
	arch, uid := lines[0], lines[1]
	sudo := ""
	if uid != "0" {
		sudo = "sudo -n "
		if out, err := sc.run(ctx, "sudo -n true", nil); err != nil {
			if strings.Contains(out, "password") {
				return nil, nil, fmt.Errorf("sudo wants a password: the agent must run as root; allow `sudo -n` for this user (NOPASSWD) or log in as root")
			}
			return nil, nil, fmt.Errorf("sudo -n does not work: %s", out)
		}
	}
	path := o.AgentPath
	if path == "" {
		if goarch[arch] != runtime.GOARCH {
			return nil, nil, fmt.Errorf("the host runs %s, this lvsdoctor is linux/%s: build lvsdoctor for that host and pass its path with --agent", arch, runtime.GOARCH)
		}
		if path, err = sc.upload(ctx); err != nil {
			return nil, nil, err
		}
	}
	if out, err := sc.run(ctx, sudo+shellQuote(path)+" version", nil); err != nil {
		if strings.Contains(out, "ermission denied") {
			return nil, nil, fmt.Errorf("%s cannot be executed there (a noexec mount?): pass a copy in an executable place with --agent PATH", path)
		}
		return nil, nil, fmt.Errorf("%s does not run there: %s", path, out)
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

// upload copies this lvsdoctor to the host, compressed and checked by
// hash, into a private directory: a fresh one per run, or with
// --keep-agent a cache directory where a copy of the same hash is reused.
func (sc *sshConn) upload(ctx context.Context) (string, error) {
	p, err := loadPayload()
	if err != nil {
		return "", err
	}
	hash := p.hash
	if sc.keep {
		sc.dir = "$HOME/.cache/lvsdoctor"
		path := sc.dir + "/lvsdoctor-" + hash[:16]
		if out, err := sc.run(ctx, "sha256sum "+path+" 2>/dev/null", nil); err == nil && strings.HasPrefix(out, hash) {
			return path, nil
		}
		if _, err := sc.run(ctx, "mkdir -p -m 700 "+sc.dir, nil); err != nil {
			return "", fmt.Errorf("cannot create %s: %w", sc.dir, err)
		}
		return path, sc.send(ctx, p, path)
	}
	dir, err := sc.run(ctx, "mktemp -d /tmp/lvsdoctor.XXXXXXXX", nil)
	if err != nil {
		return "", fmt.Errorf("cannot create a private directory: %v (%s)", err, dir)
	}
	sc.dir = dir
	path := dir + "/lvsdoctor"
	return path, sc.send(ctx, p, path)
}

// payload is this lvsdoctor, compressed and hashed once per run however
// many hosts it goes to.
type payload struct {
	gz   []byte
	hash string
}

var (
	payloadOnce sync.Once
	payloadVal  payload
	payloadErr  error
)

func loadPayload() (payload, error) {
	payloadOnce.Do(func() {
		bin, err := AgentBinary()
		if err != nil {
			payloadErr = err
			return
		}
		raw, err := os.ReadFile(bin)
		if err != nil {
			payloadErr = err
			return
		}
		sum := sha256.Sum256(raw)
		var z bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
		zw.Write(raw)
		zw.Close()
		payloadVal = payload{gz: z.Bytes(), hash: hex.EncodeToString(sum[:])}
	})
	return payloadVal, payloadErr
}

func (sc *sshConn) send(ctx context.Context, p payload, path string) error {
	cmd := fmt.Sprintf("umask 077; gzip -dc > %[1]s.part && chmod 700 %[1]s.part && mv %[1]s.part %[1]s && sha256sum %[1]s", path)
	out, err := sc.run(ctx, cmd, bytes.NewReader(p.gz))
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
}

func shellQuote(s string) string {
	if strings.HasPrefix(s, "$HOME/") {
		return `"$HOME"/` + shellQuote(s[len("$HOME/"):])
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
