package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
	// Progress hears about an upload: when it starts, and once a second
	// while it lasts (a slow link takes minutes). nil: nothing is said.
	Progress func(string)
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
	nudge    *nudger // through a jump host, until the agent's session runs
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
	if o.AgentPath == "" {
		// Hash (and, where an upload is likely, compress) this lvsdoctor
		// while the connections are made, not after.
		go prepareUpload(o.KeepAgent)
	}
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
	if prev != nil {
		sc.nudge = &nudger{}
	}
	c, err := dialHop(ctx, prev, t, o, sc.nudge)
	if err != nil {
		sc.closeClients()
		return nil, err
	}
	sc.clients = append(sc.clients, c)
	cl, hello, err := sc.startAgent(ctx, spec, o)
	if err != nil {
		sc.close()
		return nil, err
	}
	return &Conn{Client: cl, Spec: spec, Hello: hello, closer: sc.close, remoteDir: sc.dir}, nil
}

// dialHop opens one SSH connection, directly or through the previous hop,
// with the handshake bounded by the timeout: an sshd that accepts and then
// says nothing must not hang the check.
func dialHop(ctx context.Context, via *ssh.Client, t *sshTarget, o SSHOptions, nd *nudger) (*ssh.Client, error) {
	addr := t.Addr()
	var conn net.Conn
	var err error
	dctx, cancel := context.WithTimeout(ctx, o.timeout())
	defer cancel()
	if via == nil {
		var d net.Dialer
		conn, err = d.DialContext(dctx, "tcp", addr)
		if tc, ok := conn.(*net.TCPConn); ok && err == nil {
			conn = newQuickAckConn(tc)
		}
	} else {
		conn, err = via.DialContext(dctx, "tcp", addr)
		if nd != nil && err == nil {
			conn = &nudgeConn{Conn: conn, n: nd}
		}
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
	cc.KeyExchanges = t.Kex
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
	if nd != nil {
		nd.arm(c)
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// quickAckConn is the TCP connection to the first hop, acknowledging at
// once what it receives. sshd leaves Nagle's algorithm on for a
// connection that runs no command (a jump host's, always; a target's
// until its first session), so each small packet it sends while an
// earlier one is unacknowledged waits for our ACK, which Linux delays by
// up to 40 ms: a stall on the agent's answers, all of which a jump host
// forwards. TCP_QUICKACK does not stick (sending data turns delayed ACKs
// back on), so it is set again after every read and write.
type quickAckConn struct {
	*net.TCPConn
	raw syscall.RawConn
}

func newQuickAckConn(c *net.TCPConn) net.Conn {
	raw, err := c.SyscallConn()
	if err != nil {
		return c
	}
	q := &quickAckConn{TCPConn: c, raw: raw}
	q.quickAck()
	return q
}

func (q *quickAckConn) quickAck() {
	_ = q.raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}

func (q *quickAckConn) Read(b []byte) (int, error) {
	n, err := q.TCPConn.Read(b)
	q.quickAck()
	return n, err
}

func (q *quickAckConn) Write(b []byte) (int, error) {
	n, err := q.TCPConn.Write(b)
	q.quickAck()
	return n, err
}

// A nudger answers, through a jump host, every packet that the target's
// sshd sends between authentication and the start of the agent's session
// with a request that sshd ignores (keepalive@openssh.com, no reply
// wanted). Until its first command runs, that sshd has Nagle's algorithm
// on: of the small packets it sends in a row (host keys, two debug
// messages, the answer to the session we open), each waits for the jump
// host to acknowledge the one before, which Linux delays by up to 40 ms
// when it has nothing to send back. Ours, forwarded at once, carries that
// acknowledgement.
type nudger struct {
	c  atomic.Pointer[ssh.Conn]
	on atomic.Bool
}

func (n *nudger) arm(c ssh.Conn) {
	n.c.Store(&c)
	n.on.Store(true)
}

// stop ends the nudges: the agent's session runs, and sshd has turned
// Nagle's algorithm off.
func (n *nudger) stop() {
	if n != nil {
		n.on.Store(false)
	}
}

func (n *nudger) nudge() {
	if !n.on.Load() {
		return
	}
	if c := n.c.Load(); c != nil {
		// Not from the reading goroutine: a write may wait for a window
		// that only a read can open.
		go (*c).SendRequest("keepalive@openssh.com", false, nil)
	}
}

// nudgeConn is the connection to the target through a jump host.
type nudgeConn struct {
	net.Conn
	n *nudger
}

func (c *nudgeConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.n.nudge()
	}
	return n, err
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

// archPattern is the shell pattern of the architectures (as `uname -m`
// names them) this lvsdoctor runs on; tests change it.
var archPattern = unamePattern

// hostZstd is the command that unpacks zstd on a host; tests name one
// that no host has, to upload with gzip.
var hostZstd = "zstd"

func unamePattern() string {
	var m []string
	for u, g := range goarch {
		if g == runtime.GOARCH {
			m = append(m, u)
		}
	}
	if len(m) == 0 {
		return "''" // matches nothing: the controller explains
	}
	slices.Sort(m)
	return strings.Join(m, "|")
}

// setupScript is the one session that sets up and then runs the agent.
// It reports what the controller must know (architecture, uid, a cached
// copy, a private directory, whether zstd runs there); where a copy is
// needed it waits on stdin for "upload EXT SIZE HASH" and the chunks of
// the compressed agent (upload.go), acknowledging each with "@got";
// checks the compressed bytes' hash against HASH before it unpacks
// anything, and publishes the copy only once it has unpacked whole; then
// it says "@exec" and execs the agent (through sudo -n when the login is
// not root) on that stdin and stdout. A path given with --agent that
// names no file is "@missing": what execve then cannot find is the
// agent's program interpreter (agentStartError).
//
// Every session costs sshd a fork and a shell, every wait a round trip
// and every process a fork and exec: one session per host, no question
// the script can answer itself, and no process at all before the agent's
// when a copy is cached (architecture and uid come from /proc, a cached
// copy is known by its hash-named path, published only once it unpacked)
// is what keeps a check over SSH close to one over netns. Whether sudo -n
// and the agent run is learnt from the agent's first answer, or from what
// sudo or the shell said instead.
//
// The upload lands in a file before it is unpacked, each chunk read in
// one block where dd can (GNU's iflag=fullblock; else head -c, 8 KiB a
// read), which lets sshd hand it over as fast as it arrives (sshd's CPU
// for an upload: 1.7 times as much behind gzip reading the pipe, 1.4
// times as much behind head -c). openssl hashes several times faster than
// coreutils' sha256sum; either will do. The unpacker's own checksum
// (zstd's, gzip's CRC) catches what the hash cannot: a copy that was
// damaged before it was compressed (the controller checks that its cached
// copy still hashes to what it did when it was written). An upload cut
// short (the controller gone: sshd hangs up, or the next write to it
// fails) removes its partial files, also in ~/.cache. In the run's own
// directory the agent is unpacked in place, and the compressed copy
// emptied there (the directory goes when the agent exits); the cache gets
// it under a temporary name (this host's name and the shell's PID,
// created exclusively; mktemp if that name is taken), renamed once whole,
// and the copies other builds uploaded there more than a day ago go (a
// build still in use uploads its own again), so that hosts do not gather
// one per version. `read` takes one byte at a time from a pipe, dd and
// head stop at N bytes, and the controller sends nothing meant for the
// agent before "@exec", so nothing meant for the agent is swallowed by the
// setup.
const setupScript = `umask 077
S=; D=; A=; U=; M=@MODE@; P=@PATH@
[ -r /proc/sys/kernel/arch ] && read -r A < /proc/sys/kernel/arch
[ -n "$A" ] || A=$(uname -m)
while read -r k r e x; do [ "$k" = Uid: ] && U=$e && break; done < /proc/self/status
[ -n "$U" ] || U=$(id -u)
printf '@arch %s\n@uid %s\n' "$A" "$U"
[ "$U" = 0 ] || S="sudo -n"
case $A in @ARCH@) ;; *) [ $M = given ] || { echo "@wrongarch"; exit 0; } ;; esac
quit() { [ -n "$D" ] && rm -rf "$D"; exit 0; }
case $M in
keep) if [ -x "$P" ] && [ -s "$P" ]; then M=given; echo "@cache hit"; fi ;;
temp) D=$(mktemp -d /tmp/lvsdoctor.XXXXXXXX) || { echo "@dir fail"; exit 0; }; P=$D/lvsdoctor; echo "@dir $D" ;;
esac
if [ $M != given ]; then
  command -v @ZSTD@ >/dev/null 2>&1 && echo "@zstd"
  echo "@wait"
  read -r cmd f size H && [ "$cmd" = upload ] || quit
  case $f in zst) un() { @ZSTD@ -dcq; } ;; gz) un() { gzip -dc; } ;; *) quit ;; esac
  if [ $M = temp ]; then t=$P
  else
    [ -d "${P%/*}" ] || mkdir -p -m 700 "${P%/*}" || { echo "@upload fail: cannot create ${P%/*}"; quit; }
    hn=; read -r hn 2>/dev/null < /proc/sys/kernel/hostname
    t="$P.part.$hn.$$"; set -C; true 2>/dev/null > "$t"; r=$?; set +C
    [ $r = 0 ] || t=$(mktemp "$P.part.XXXXXX") || { echo "@upload fail: cannot create ${P%/*}"; quit; }
  fi
  trap 'rm -f "$t" "$t.z"; quit' HUP INT TERM PIPE
  fail() { rm -f "$t" "$t.z"; echo "@upload fail$1"; quit; }
  if dd if=/dev/null of=/dev/null iflag=fullblock status=none 2>/dev/null; then
    rd() { dd bs="$1" count=1 iflag=fullblock status=none; }
  else
    rd() { head -c "$1"; }
  fi
  true > "$t.z" || fail ": cannot write ${P%/*}"
  while read -r n && [ "$n" != 0 ]; do
    rd "$n" >> "$t.z" || fail ": cannot write ${P%/*}"
    echo "@got"
  done
  h=; command -v openssl >/dev/null 2>&1 && h=$(openssl dgst -sha256 -r < "$t.z" 2>/dev/null) && h=${h%% *}
  case $h in *[!0-9a-f]*) h= ;; esac
  [ ${#h} = 64 ] || { h=$(sha256sum < "$t.z") && h=${h%% *}; }
  echo "@hash $h"
  [ "$h" = "$H" ] || fail ": hash $h"
  un < "$t.z" > "$t" && chmod 700 "$t" || fail
  if [ $M = temp ]; then true > "$t.z"; else
    mv -f "$t" "$P" || fail; rm -f "$t.z"
    find "${P%/*}" -maxdepth 1 -name 'lvsdoctor-*' ! -name '*.part.*' -mtime +0 -exec rm -f {} + 2>/dev/null
  fi
  trap - HUP INT TERM PIPE
fi
[ -e "$P" ] || { echo "@missing $P"; exit 0; }
echo "@exec"
if [ -n "$D" ]; then $S "$P" agent; rc=$?; rm -rf "$D"; exit $rc; fi
exec $S "$P" agent
`

// startAgent puts lvsdoctor on the host (unless told where one is) and
// starts it as root, all on one session (setupScript) whose stdin and
// stdout then carry the agent protocol, and returns the agent once it has
// answered. An uploaded agent in a private directory is removed by the
// script when the agent exits, so a dropped connection leaves nothing
// behind.
func (sc *sshConn) startAgent(ctx context.Context, spec string, o SSHOptions) (*agent.Client, agent.Hello, error) {
	var p payload
	mode, path := "temp", "''"
	if o.AgentPath != "" {
		mode, path = "given", shellQuote(o.AgentPath)
	} else {
		var err error
		if p, err = loadPayload(); err != nil {
			return nil, agent.Hello{}, err
		}
		if sc.keep {
			mode, path = "keep", shellQuote("$HOME/.cache/lvsdoctor/lvsdoctor-"+p.hash[:16])
		}
	}
	s, err := sc.target().NewSession()
	if err != nil {
		return nil, agent.Hello{}, err
	}
	sc.session = s
	stdin, err := s.StdinPipe()
	if err != nil {
		return nil, agent.Hello{}, err
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		return nil, agent.Hello{}, err
	}
	// sshd's notices ("Could not chdir to home directory") and a failing
	// command's complaint go to stderr: kept (bounded) for the messages.
	stderr := &tailBuffer{max: 4096}
	s.Stderr = stderr
	script := strings.NewReplacer("@MODE@", mode, "@PATH@", path, "@ARCH@", archPattern(),
		"@ZSTD@", hostZstd).Replace(setupScript)
	if err := s.Start(script); err != nil {
		return nil, agent.Hello{}, err
	}
	sc.nudge.stop()
	out := bufio.NewReader(stdout)
	// One reader takes the script's "@key value" lines, up to "@exec"
	// (or the end): what follows is the agent's. The acknowledgements of
	// the upload's chunks go to the upload.
	lines := make(chan string)
	acks := make(chan struct{}, 64)
	var readErr error // set before lines closes
	stopReading := make(chan struct{})
	defer close(stopReading)
	go func() {
		defer close(lines)
		defer close(acks)
		for {
			l, err := out.ReadString('\n')
			if l = strings.TrimSpace(l); l == "@got" {
				select {
				case acks <- struct{}{}:
				default: // more than were sent: the script is not ours
				}
			} else if strings.HasPrefix(l, "@") {
				select {
				case lines <- l:
				case <-stopReading:
					return
				}
				if l == "@exec" {
					return
				}
			}
			if err != nil {
				readErr = err
				return
			}
		}
	}()
	got := map[string]string{}
	// The upload, once started: while it is being written, the host may
	// take as long as that (bounded on its own) before its next line.
	var (
		pk           *packed
		uploading    chan error
		upErr        error
		stopDeadline = func() bool { return false }
	)
	upload := func() error {
		var err error
		if pk, err = p.pack(packingFor(got)); err != nil {
			return fmt.Errorf("compressing the agent: %w", err)
		}
		// Bounded by its progress, not its length: a slow link still
		// gets the agent across, a host (or hop) that takes nothing for
		// the timeout stops the upload.
		uploading = make(chan error, 2)
		var sent atomic.Int64
		stall := time.AfterFunc(sc.timeout, func() {
			uploading <- fmt.Errorf("uploading the agent: the host took no part of it for %s (%d of %d bytes stored)", sc.timeout, sent.Load(), pk.size)
		})
		say := func(string) {}
		if o.Progress != nil {
			say = o.Progress
		}
		mb := func(n int64) string { return fmt.Sprintf("%.1f", float64(n)/1e6) }
		say(fmt.Sprintf("%s: uploading lvsdoctor (%s MB, %s)", spec, mb(pk.size), pk.packing.ext))
		last := time.Now()
		go func() {
			uploading <- pk.send(stdin, acks, func(n int64) {
				sent.Store(n)
				stall.Reset(sc.timeout)
				if n < pk.size && time.Since(last) >= time.Second {
					last = time.Now()
					say(fmt.Sprintf("%s: uploading lvsdoctor, %s of %s MB", spec, mb(n), mb(pk.size)))
				}
			})
		}()
		stopDeadline = stall.Stop
		return nil
	}
	// answer reads lines up to "@exec", "@wait" or a failure, each
	// bounded by the timeout (but for an upload the host is busy with):
	// a host that stalls mid-setup must not hang the check.
	answer := func() (string, error) {
		for {
			var timeout <-chan time.Time
			if _, waiting := got["wait"]; uploading == nil || !waiting {
				timeout = time.After(sc.timeout)
			}
			var l string
			var ok bool
			select {
			case l, ok = <-lines:
			case err := <-uploading:
				uploading = nil
				stopDeadline()
				if err != nil && upErr == nil {
					// The script may say why (another architecture, no
					// directory, gzip's complaint): an end of input makes
					// it stop waiting for the rest.
					upErr = err
					stdin.Close()
				}
				continue
			case <-timeout:
				return "", fmt.Errorf("the setup commands did not answer within %s", sc.timeout)
			case <-ctx.Done():
				return "", ctx.Err()
			}
			if !ok {
				if upErr != nil {
					return "", upErr
				}
				if st := strings.TrimSpace(stderr.String()); st != "" {
					return "", fmt.Errorf("cannot run commands: %s", st)
				}
				return "", fmt.Errorf("cannot run commands: the session ended (%v)", readErr)
			}
			k, v, _ := strings.Cut(l[1:], " ")
			got[k] = strings.TrimSpace(v)
			if k == "dir" && v != "fail" {
				sc.dir = v // removed by close if the setup stops short
			}
			switch {
			case k == "exec" && upErr != nil:
				return "", upErr
			case k == "exec", k == "wait", k == "wrongarch", k == "missing", k == "upload", k == "dir" && v == "fail":
				return k, nil
			}
		}
	}
	k, err := answer()
	switch {
	case err != nil:
		return nil, agent.Hello{}, err
	case k == "wrongarch":
		return nil, agent.Hello{}, fmt.Errorf("the host runs %s, this lvsdoctor is linux/%s: build lvsdoctor for that host and pass its path with --agent", got["arch"], runtime.GOARCH)
	case k == "dir":
		return nil, agent.Hello{}, fmt.Errorf("cannot create a private directory in /tmp")
	case k == "missing":
		return nil, agent.Hello{}, fmt.Errorf("the agent does not run there: that host has no %s (--agent names a copy already on the host)", got["missing"])
	case got["arch"] == "" || got["uid"] == "":
		return nil, agent.Hello{}, fmt.Errorf("unexpected answer to the setup commands: %q", got)
	}
	if mode == "keep" {
		sc.dir = "$HOME/.cache/lvsdoctor"
	}
	if k == "wait" {
		if uploading == nil && pk == nil {
			if err := upload(); err != nil {
				return nil, agent.Hello{}, err
			}
		}
		if k, err = answer(); err != nil {
			if err == upErr {
				return nil, agent.Hello{}, err
			}
			return nil, agent.Hello{}, fmt.Errorf("uploading the agent: %w", err)
		}
	}
	if pk != nil {
		switch {
		case got["hash"] != "" && got["hash"] != pk.hash:
			return nil, agent.Hello{}, fmt.Errorf("the uploaded agent's hash does not match (%s)", got["hash"])
		case k == "upload":
			why := strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(got["upload"], "fail"), ":"))
			if !strings.HasPrefix(why, "cannot create") {
				// What did not unpack may be a damaged cached copy:
				// the next run compresses afresh.
				pk.drop()
			}
			return nil, agent.Hello{}, fmt.Errorf("uploading the agent failed: %s", strings.TrimSpace(why+" "+sshdNoticesOut(stderr.String())))
		case k != "exec" || got["hash"] != pk.hash:
			return nil, agent.Hello{}, fmt.Errorf("uploading the agent: unexpected answer to the setup commands: %q", got)
		}
	}
	if k != "exec" {
		return nil, agent.Hello{}, fmt.Errorf("unexpected answer to the setup commands: %q", got)
	}
	sc.started = true
	// The agent's first answer shows that it runs, as root.
	cl := agent.NewClient(stdin, out)
	hctx, cancel := context.WithTimeout(ctx, sc.timeout)
	defer cancel()
	var h agent.Hello
	if err := cl.Call(hctx, agent.OpHello, struct{}{}, &h); err != nil {
		if ctx.Err() != nil {
			return nil, agent.Hello{}, ctx.Err()
		}
		if hctx.Err() != nil {
			return nil, agent.Hello{}, fmt.Errorf("the agent did not answer within %s", sc.timeout)
		}
		// Everything the agent, sudo or the shell said is in once the
		// session has ended.
		ended := make(chan error, 1)
		go func() { ended <- s.Wait() }()
		var exit error
		select {
		case exit = <-ended:
		case <-time.After(time.Second):
		}
		said := sshdNoticesOut(stderr.String())
		if ee := (*ssh.ExitError)(nil); said == "" && errors.As(exit, &ee) {
			said = fmt.Sprintf("it exited with status %d, without a word", ee.ExitStatus())
		}
		err := agentStartError(said, got["uid"] != "0")
		if _, hit := got["cache"]; hit && !strings.Contains(err.Error(), "sudo") {
			// Published only once its hash matched, so damaged since:
			// said, not removed (another run may be starting it).
			err = fmt.Errorf("%w; the copy cached there (~/.cache/lvsdoctor/lvsdoctor-%s) may be damaged: remove it, and the next run uploads a new one", err, p.hash[:16])
		}
		return nil, agent.Hello{}, err
	}
	return cl, h, nil
}

// sshdNoticesOut drops what sshd itself says on a session's stderr
// ("Could not chdir to home directory ..."), which explains nothing.
func sshdNoticesOut(stderr string) string {
	var keep []string
	for _, l := range strings.Split(stderr, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "Could not chdir to home directory") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "; ")
}

// agentStartError says why the agent did not start, from what sudo or
// the shell printed instead.
func agentStartError(stderr string, sudo bool) error {
	switch {
	case strings.Contains(stderr, "ermission denied"):
		// A noexec mount, or a given path without the x bit.
		return fmt.Errorf("the agent cannot be executed there (a noexec mount?): pass a copy in an executable place with --agent PATH")
	case sudo && strings.Contains(stderr, "sudo") && strings.Contains(stderr, "password"):
		return fmt.Errorf("sudo wants a password: the agent must run as root; allow `sudo -n` for this user (NOPASSWD) or log in as root")
	case strings.Contains(stderr, "xec format error"):
		return fmt.Errorf("the agent does not run there (%s): build lvsdoctor for that host's architecture and pass its path with --agent", stderr)
	case strings.Contains(stderr, "GLIBC_"):
		// The loader's "version `GLIBC_2.34' not found": built with cgo
		// against a newer C library than the host's.
		return fmt.Errorf("the agent does not run there: it was built against a newer C library than that host has (%s): %s", stderr, staticHint)
	case sudo && (strings.Contains(stderr, "sudo: not found") || strings.Contains(stderr, "sudo: command not found")):
		return fmt.Errorf("sudo is not installed there: the agent must run as root; log in as root, or install sudo and allow `sudo -n` for this user")
	case strings.Contains(stderr, "not found") || strings.Contains(stderr, "No such file or directory"):
		// The file is there (the setup script looked), so what execve
		// did not find is its program interpreter: a build with cgo,
		// on a host without that C library (musl, as on Alpine).
		return fmt.Errorf("the agent does not run there: its program interpreter (the C library's loader it was built with) is missing on that host (%s): %s", stderr, staticHint)
	case sudo && !strings.Contains(stderr, "unable to execute") &&
		(strings.Contains(stderr, "sudo:") || strings.Contains(stderr, "sudoers") || strings.Contains(stderr, "may not run sudo")):
		return fmt.Errorf("sudo -n does not work: %s", stderr)
	case stderr == "":
		return fmt.Errorf("the agent does not run there: it exited without a word")
	}
	return fmt.Errorf("the agent does not run there: %s", stderr)
}

// staticHint is what to do about an agent that needs a C library the host
// does not have.
const staticHint = "build lvsdoctor with CGO_ENABLED=0 (a static binary, which runs on any Linux of its architecture; the README's build does) and run it again, or pass such a copy with --agent"

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
		j.c, j.err = dialHop(ctx, via, hop, o, nil)
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
