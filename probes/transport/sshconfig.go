package transport

import (
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kevinburke/ssh_config"
	"golang.org/x/crypto/ssh"
)

// sshTarget is one SSH hop as OpenSSH would reach it after reading
// ssh_config: where to connect, as whom, with which keys and known_hosts,
// and through which jump hosts.
type sshTarget struct {
	Alias          string // what the user wrote, for messages
	User           string
	HostName       string
	Port           int
	IdentityFiles  []string
	IdentitiesOnly bool
	KnownHosts     []string
	Jumps          []*sshTarget
	// Kex are the key exchanges offered, in order: defaultKex, or as
	// ssh_config's KexAlgorithms changes them.
	Kex []string
}

// defaultKex is the order of key exchanges offered where ssh_config says
// nothing: x/crypto's own (the post-quantum hybrid where the host has it,
// OpenSSH 9.9 and later, then X25519), without its SHA-1 group.
// (Offering P-256 before X25519, which OpenSSH computes with its portable
// reference code, saved the lab's hosts no measurable time.)
var defaultKex = []string{
	ssh.KeyExchangeMLKEM768X25519,
	ssh.KeyExchangeCurve25519,
	ssh.KeyExchangeECDHP256,
	ssh.KeyExchangeECDHP384,
	ssh.KeyExchangeECDHP521,
	ssh.KeyExchangeDH14SHA256,
}

// kexFrom is the list KexAlgorithms value v gives, as OpenSSH reads it:
// "+a,b" appends to the default, "-a,b" removes from it (patterns with *
// and ?), "^a,b" puts first, and a plain list replaces it. Names this
// client does not know are left for the handshake to skip.
func kexFrom(v string) []string {
	v = strings.TrimSpace(v)
	if v == "" {
		return slices.Clone(defaultKex)
	}
	op := v[0]
	if op == '+' || op == '-' || op == '^' {
		v = v[1:]
	}
	var names []string
	for _, n := range strings.Split(v, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	without := func(list []string, drop func(string) bool) []string {
		var out []string
		for _, k := range list {
			if !drop(k) {
				out = append(out, k)
			}
		}
		return out
	}
	switch op {
	case '+':
		return append(without(defaultKex, func(k string) bool { return slices.Contains(names, k) }), names...)
	case '-':
		return without(defaultKex, func(k string) bool {
			for _, pat := range names {
				if ok, _ := path.Match(pat, k); ok {
					return true
				}
			}
			return false
		})
	case '^':
		return append(names, without(defaultKex, func(k string) bool { return slices.Contains(names, k) })...)
	}
	return names
}

func (t *sshTarget) Addr() string { return net.JoinHostPort(t.HostName, strconv.Itoa(t.Port)) }

// parseSSHSpec splits ssh://[user@]host[:port], user@host or an alias.
func parseSSHSpec(spec string) (user, host string, port int, err error) {
	s := strings.TrimPrefix(spec, "ssh://")
	if u, h, ok := strings.Cut(s, "@"); ok {
		user, s = u, h
	}
	host = s
	if h, p, e := net.SplitHostPort(s); e == nil {
		host = h
		port, err = strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return "", "", 0, fmt.Errorf("bad port in %q", spec)
		}
	}
	if host == "" {
		return "", "", 0, fmt.Errorf("no host in %q", spec)
	}
	return user, host, port, nil
}

// sshConfig reads ssh_config files the way OpenSSH does: the user's file
// (or --ssh-config), then /etc/ssh/ssh_config; the first value wins.
type sshConfig struct {
	files []*ssh_config.Config
	home  string
}

func loadSSHConfig(path string) (*sshConfig, error) {
	home, _ := os.UserHomeDir()
	c := &sshConfig{home: home}
	paths := []string{path}
	if path == "" {
		paths = []string{filepath.Join(home, ".ssh", "config"), "/etc/ssh/ssh_config"}
	}
	for i, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			if os.IsNotExist(err) && (path == "" || i > 0) {
				continue
			}
			return nil, fmt.Errorf("ssh config: %w", err)
		}
		cfg, err := ssh_config.Decode(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("ssh config %s: %w", p, err)
		}
		c.files = append(c.files, cfg)
	}
	return c, nil
}

func (c *sshConfig) get(alias, key string) string {
	for _, f := range c.files {
		if v, err := f.Get(alias, key); err == nil && v != "" {
			return v
		}
	}
	return ""
}

func (c *sshConfig) getAll(alias, key string) []string {
	for _, f := range c.files {
		if v, err := f.GetAll(alias, key); err == nil && len(v) > 0 {
			return v
		}
	}
	return nil
}

// expand resolves ~ and the %d, %h, %r, %u tokens OpenSSH allows in paths.
func (c *sshConfig) expand(p string, t *sshTarget) string {
	if strings.HasPrefix(p, "~/") {
		p = filepath.Join(c.home, p[2:])
	}
	r := strings.NewReplacer("%d", c.home, "%h", t.HostName, "%r", t.User, "%u", currentUser(), "%%", "%")
	return r.Replace(p)
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

// resolve turns a host string into the hops to reach it. depth bounds
// ProxyJump chains that name each other.
func (c *sshConfig) resolve(spec string, depth int) (*sshTarget, error) {
	if depth > 8 {
		return nil, fmt.Errorf("ProxyJump chain too long at %q", spec)
	}
	user, host, port, err := parseSSHSpec(spec)
	if err != nil {
		return nil, err
	}
	t := &sshTarget{Alias: host, User: user, HostName: host, Port: port}
	if hn := c.get(host, "HostName"); hn != "" {
		t.HostName = strings.ReplaceAll(hn, "%h", host)
	}
	if t.User == "" {
		t.User = c.get(host, "User")
	}
	if t.User == "" {
		t.User = currentUser()
	}
	if t.Port == 0 {
		if p, err := strconv.Atoi(c.get(host, "Port")); err == nil {
			t.Port = p
		} else {
			t.Port = 22
		}
	}
	for _, f := range c.getAll(host, "IdentityFile") {
		t.IdentityFiles = append(t.IdentityFiles, c.expand(f, t))
	}
	if len(t.IdentityFiles) == 0 {
		// OpenSSH's defaults, in its order.
		for _, n := range []string{"id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk"} {
			t.IdentityFiles = append(t.IdentityFiles, filepath.Join(c.home, ".ssh", n))
		}
	}
	t.IdentitiesOnly = strings.EqualFold(c.get(host, "IdentitiesOnly"), "yes")
	for _, f := range strings.Fields(c.get(host, "UserKnownHostsFile")) {
		t.KnownHosts = append(t.KnownHosts, c.expand(f, t))
	}
	if len(t.KnownHosts) == 0 {
		t.KnownHosts = []string{filepath.Join(c.home, ".ssh", "known_hosts")}
	}
	t.Kex = kexFrom(c.get(host, "KexAlgorithms"))
	if pj := c.get(host, "ProxyJump"); pj != "" && !strings.EqualFold(pj, "none") {
		for _, hop := range strings.Split(pj, ",") {
			j, err := c.resolve(strings.TrimSpace(hop), depth+1)
			if err != nil {
				return nil, fmt.Errorf("ProxyJump of %s: %w", host, err)
			}
			// A jump host's own jumps come first (OpenSSH chains them).
			t.Jumps = append(t.Jumps, j.Jumps...)
			j.Jumps = nil
			t.Jumps = append(t.Jumps, j)
		}
	}
	return t, nil
}
