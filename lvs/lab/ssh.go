package lab

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// The management network of `lab up --ssh`: its own namespace NAME-mgmt
// holds a bridge with the address MgmtIP; every lab host (client,
// director, router, rs*) gets one more interface, MgmtIface, on it, and a
// bastion namespace NAME-bastion sits there too. A real OpenSSH sshd runs
// in every host namespace and in the bastion, listening on the management
// address only. Nothing is added to the root namespace: the check over SSH
// runs inside NAME-mgmt (lab exec mgmt -- lvsdoctor check ...).
var (
	MgmtNet   = mustCIDR("198.51.100.0/24") // TEST-NET-2
	MgmtIP    = net.IPv4(198, 51, 100, 1).To4()
	BastionIP = net.IPv4(198, 51, 100, 2).To4()
)

// Names of the management network.
const (
	RoleMgmt    = "mgmt"
	RoleBastion = "bastion"
	// MgmtIface is the management interface of every lab host.
	MgmtIface = "mgmt0"
	// mgmtBridge is the bridge in NAME-mgmt.
	mgmtBridge = "mgmt"
	// SSHDPath is Debian's OpenSSH server.
	SSHDPath = "/usr/sbin/sshd"
	// sudoersDir holds the NOPASSWD drop-in for --ssh-user, removed at down.
	sudoersDir = "/etc/sudoers.d"
)

// SSHState is what state.json records of the management network.
type SSHState struct {
	Mgmt    string `json:"mgmt"`    // namespace NAME-mgmt
	Bastion string `json:"bastion"` // namespace NAME-bastion
	// Addrs maps a role (client, director, router, rs1.., bastion) to its
	// management address.
	Addrs map[string]string `json:"addrs"`
	// User is the non-root login that uses sudo -n ("" when none).
	User    string `json:"user,omitempty"`
	Sudoers string `json:"sudoers,omitempty"` // the drop-in written for User
	// Files in the state directory.
	Dir        string         `json:"dir"`
	Config     string         `json:"ssh_config"`
	KnownHosts string         `json:"known_hosts"`
	Key        string         `json:"key"`
	Topology   string         `json:"topology"`                // hosts by alias, through the bastion
	Direct     string         `json:"topology_direct"`         // ssh://root@ADDR, no jump host
	SudoTopo   string         `json:"topology_sudo,omitempty"` // User@alias, through the bastion
	PIDs       map[string]int `json:"pids"`                    // sshd by role
}

// mgmtAddr is the management address of a host role: the client .3, the
// director .4, the router .5, rsN .(10+N).
func mgmtAddr(role string) net.IP {
	switch role {
	case RoleClient:
		return net.IPv4(198, 51, 100, 3).To4()
	case RoleDirector:
		return net.IPv4(198, 51, 100, 4).To4()
	case RoleRouter:
		return net.IPv4(198, 51, 100, 5).To4()
	case RoleBastion:
		return BastionIP
	}
	var n int
	if _, err := fmt.Sscanf(role, "rs%d", &n); err == nil && n > 0 && n <= MaxRealServers {
		return net.IPv4(198, 51, 100, byte(10+n)).To4()
	}
	return nil
}

// Alias is the ssh_config alias of a lab host: its namespace name.
func (s *State) Alias(role string) string { return s.Name + "-" + role }

// sshHosts are the hosts that get a management interface and an sshd.
func (s *State) sshHosts() []*Host {
	var r []*Host
	for i := range s.Hosts {
		if s.Hosts[i].Role != RoleSwitch {
			r = append(r, &s.Hosts[i])
		}
	}
	return r
}

var userRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]*$`)

// checkSSHPrereqs fails early, naming the package, when sshd is missing,
// and checks the non-root user exists and sudo is there.
func checkSSHPrereqs(o Options) error {
	if _, err := os.Stat(SSHDPath); err != nil {
		return fmt.Errorf("lab up --ssh needs OpenSSH's sshd (%s): apt-get install openssh-server", SSHDPath)
	}
	if o.SSHUser != "" {
		if !userRE.MatchString(o.SSHUser) || o.SSHUser == "root" {
			return fmt.Errorf("--ssh-user %q: a non-root login name", o.SSHUser)
		}
		if _, err := user.Lookup(o.SSHUser); err != nil {
			return fmt.Errorf("--ssh-user %s: no such user (create it first, e.g. useradd -M -s /bin/sh -p '*' %s)", o.SSHUser, o.SSHUser)
		}
		if _, err := exec.LookPath("sudo"); err != nil {
			return fmt.Errorf("--ssh-user needs sudo on this machine: apt-get install sudo")
		}
	}
	return nil
}

// upSSH builds the management network and starts the sshds (Up calls it
// after the lab itself is ready).
func (e *env) upSSH(ctx context.Context) error {
	st := e.st
	o := st.Options
	dir := filepath.Join(StateDir(st.Name), "ssh")
	ss := &SSHState{
		Mgmt: st.Name + "-" + RoleMgmt, Bastion: st.Name + "-" + RoleBastion,
		Addrs: map[string]string{}, User: o.SSHUser, Dir: dir,
		Config: filepath.Join(dir, "ssh_config"), KnownHosts: filepath.Join(dir, "known_hosts"),
		Key: filepath.Join(dir, "id_ed25519"), Topology: filepath.Join(StateDir(st.Name), "ssh.yaml"),
		Direct: filepath.Join(StateDir(st.Name), "ssh-direct.yaml"), PIDs: map[string]int{},
	}
	st.SSH = ss
	if err := st.save(); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// The two namespaces of the management network.
	for _, n := range []string{ss.Mgmt, ss.Bastion} {
		nh, err := createNS(n, func() error {
			return writeSysctls([]sysctl{
				{Key: "net.ipv4.ip_forward", Value: "0"},
				{Key: "net.ipv6.conf.all.disable_ipv6", Value: "1", Optional: true},
				{Key: "net.ipv6.conf.default.disable_ipv6", Value: "1", Optional: true},
			})
		})
		if nh >= 0 {
			e.mu.Lock()
			var s unix.Stat_t
			if unix.Fstat(int(nh), &s) == nil {
				st.Inodes[n] = s.Ino
			}
			role := RoleMgmt
			if n == ss.Bastion {
				role = RoleBastion
			}
			e.ns[role] = nh
			e.mu.Unlock()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
	}
	if err := st.save(); err != nil {
		return err
	}
	mg, err := e.nl(RoleMgmt)
	if err != nil {
		return err
	}
	defer mg.Close()
	if err := linkUp(mg, "lo"); err != nil {
		return err
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: mgmtBridge}}
	if err := mg.LinkAdd(br); err != nil {
		return fmt.Errorf("mgmt: bridge: %w", err)
	}
	brl, err := mg.LinkByName(mgmtBridge)
	if err != nil {
		return err
	}
	ones, _ := MgmtNet.Mask.Size()
	if err := applyAddrs(mg, brl, []string{fmt.Sprintf("%s/%d", MgmtIP, ones)}, true); err != nil {
		return fmt.Errorf("mgmt: %w", err)
	}
	if err := mg.LinkSetUp(brl); err != nil {
		return err
	}
	roles := []string{RoleBastion}
	for _, h := range st.sshHosts() {
		roles = append(roles, h.Role)
	}
	for _, role := range roles {
		ip := mgmtAddr(role)
		if ip == nil {
			return fmt.Errorf("no management address for %s", role)
		}
		ss.Addrs[role] = ip.String()
		if err := e.mgmtLink(mg, brl, role, fmt.Sprintf("%s/%d", ip, ones)); err != nil {
			return fmt.Errorf("%s: management link: %w", role, err)
		}
	}
	if err := st.save(); err != nil {
		return err
	}
	// Keys and files.
	clientPub, err := writeKey(ss.Key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), clientPub, 0o644); err != nil {
		return err
	}
	var kh strings.Builder
	for _, role := range roles {
		hk := filepath.Join(dir, role+"_host_key")
		pub, err := writeKey(hk)
		if err != nil {
			return err
		}
		fmt.Fprintf(&kh, "%s %s", ss.Addrs[role], pub)
		conf := sshdConfig(ss.Addrs[role], hk, filepath.Join(dir, "authorized_keys"), filepath.Join(dir, role+"_sshd.pid"), role == RoleBastion)
		if err := os.WriteFile(filepath.Join(dir, role+"_sshd_config"), []byte(conf), 0o600); err != nil {
			return err
		}
	}
	if err := os.WriteFile(ss.KnownHosts, []byte(kh.String()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(ss.Config, []byte(st.sshConfig()), 0o644); err != nil {
		return err
	}
	if o.SSHUser != "" {
		ss.Sudoers = filepath.Join(sudoersDir, "lvsdoctor-lab-"+st.Name)
		if err := os.MkdirAll(sudoersDir, 0o755); err != nil {
			return err
		}
		line := fmt.Sprintf("# lvsdoctor lab %s (removed by lab down)\n%s ALL=(ALL) NOPASSWD: ALL\n", st.Name, o.SSHUser)
		if err := os.WriteFile(ss.Sudoers, []byte(line), 0o440); err != nil {
			return fmt.Errorf("sudoers drop-in: %w", err)
		}
		ss.SudoTopo = filepath.Join(StateDir(st.Name), "ssh-sudo.yaml")
	}
	if err := st.save(); err != nil {
		return err
	}
	// The privilege separation directory Debian's sshd wants.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return err
	}
	for _, role := range roles {
		pid, err := e.startSSHD(role, dir)
		if err != nil {
			return err
		}
		ss.PIDs[role] = pid
	}
	if err := st.save(); err != nil {
		return err
	}
	if err := e.waitSSHD(ctx, roles, 10*time.Second); err != nil {
		return err
	}
	for _, t := range []struct {
		path  string
		style string
	}{{ss.Topology, "alias"}, {ss.Direct, "direct"}, {ss.SudoTopo, "sudo"}} {
		if t.path == "" {
			continue
		}
		if err := st.writeSSHTopologyFile(t.path, t.style); err != nil {
			return err
		}
	}
	return st.save()
}

// mgmtLink makes the management veth of role: mgmt0 in its namespace,
// the peer m-ROLE a port of the management bridge.
func (e *env) mgmtLink(mg *netlink.Handle, br netlink.Link, role, addr string) error {
	peer := "m-" + role
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: MgmtIface, Namespace: netlink.NsFd(int(e.handle(role)))},
		PeerName:      peer,
		PeerNamespace: netlink.NsFd(int(e.handle(RoleMgmt))),
	}
	if err := mg.LinkAdd(v); err != nil {
		return fmt.Errorf("veth %s/%s: %w", MgmtIface, peer, err)
	}
	pl, err := mg.LinkByName(peer)
	if err != nil {
		return err
	}
	if err := mg.LinkSetMaster(pl, br); err != nil {
		return err
	}
	if err := mg.LinkSetUp(pl); err != nil {
		return err
	}
	hn, err := e.nl(role)
	if err != nil {
		return err
	}
	defer hn.Close()
	if err := linkUp(hn, "lo"); err != nil {
		return err
	}
	l, err := hn.LinkByName(MgmtIface)
	if err != nil {
		return err
	}
	if err := hn.LinkSetUp(l); err != nil {
		return err
	}
	return applyAddrs(hn, l, []string{addr}, true)
}

// writeKey writes a fresh ed25519 private key (OpenSSH format, 0600) and
// path.pub, and returns the public key line.
func writeKey(path string) ([]byte, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	blk, err := ssh.MarshalPrivateKey(priv, "lvsdoctor-lab")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
		return nil, err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	line := ssh.MarshalAuthorizedKey(sp)
	return line, os.WriteFile(path+".pub", line, 0o644)
}

func sshdConfig(addr, hostKey, authKeys, pidFile string, bastion bool) string {
	fwd := "no"
	if bastion {
		fwd = "yes" // ProxyJump opens direct-tcpip channels through it
	}
	return fmt.Sprintf(`# lvsdoctor lab sshd (written by lab up --ssh)
ListenAddress %s:22
HostKey %s
AuthorizedKeysFile %s
PidFile %s
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
AllowTcpForwarding %s
X11Forwarding no
MaxStartups 200
MaxSessions 50
LogLevel ERROR
`, addr, hostKey, authKeys, pidFile, fwd)
}

// startSSHD starts sshd -D from a thread inside role's namespace.
func (e *env) startSSHD(role, dir string) (int, error) {
	logf, err := os.OpenFile(filepath.Join(dir, role+"_sshd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(SSHDPath, "-D", "-e", "-f", filepath.Join(dir, role+"_sshd_config"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	if err := inNS(e.handle(role), cmd.Start); err != nil {
		return 0, fmt.Errorf("%s: start sshd: %w", role, err)
	}
	go cmd.Wait()
	return cmd.Process.Pid, nil
}

// waitSSHD waits until every sshd answers with its banner, seen from the
// management namespace.
func (e *env) waitSSHD(ctx context.Context, roles []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return parallel(ctx, 16, roles, func(role string) error {
		addr := net.JoinHostPort(e.st.SSH.Addrs[role], "22")
		var last error
		for ctx.Err() == nil {
			last = inNS(e.handle(RoleMgmt), func() error {
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					return err
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(2 * time.Second))
				b := make([]byte, 4)
				if _, err := io.ReadFull(c, b); err != nil {
					return err
				}
				if string(b) != "SSH-" {
					return fmt.Errorf("not an SSH banner: %q", b)
				}
				return nil
			})
			if last == nil {
				return nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		log, _ := os.ReadFile(filepath.Join(e.st.SSH.Dir, role+"_sshd.log"))
		return fmt.Errorf("%s: sshd on %s did not answer: %v %s", role, addr, last, strings.TrimSpace(string(log)))
	})
}

// sshConfig is the lab's ssh_config: one alias per host (its namespace
// name) reached through the bastion, root by default, the lab's key and
// known_hosts for every host.
func (s *State) sshConfig() string {
	ss := s.SSH
	var b strings.Builder
	fmt.Fprintf(&b, "# lvsdoctor lab %s: ssh_config (written by lab up --ssh)\n", s.Name)
	var aliases []string
	for _, h := range s.sshHosts() {
		aliases = append(aliases, s.Alias(h.Role))
	}
	fmt.Fprintf(&b, "Host %s\n  ProxyJump %s\n", strings.Join(aliases, " "), s.Alias(RoleBastion))
	fmt.Fprintf(&b, "Host %s\n  HostName %s\n", s.Alias(RoleBastion), ss.Addrs[RoleBastion])
	for _, h := range s.sshHosts() {
		fmt.Fprintf(&b, "Host %s\n  HostName %s\n", s.Alias(h.Role), ss.Addrs[h.Role])
	}
	fmt.Fprintf(&b, "Host *\n  User root\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n", ss.Key, ss.KnownHosts)
	return b.String()
}

// writeSSHTopologyFile writes the lab's topology with SSH hosts: "alias"
// (through the bastion, as root), "direct" (ssh://root@ADDR) or "sudo"
// (USER@alias, through the bastion, sudo -n).
func (s *State) writeSSHTopologyFile(path, style string) error {
	var b strings.Builder
	if err := s.WriteTopology(&b); err != nil {
		return err
	}
	text := b.String()
	for _, h := range s.sshHosts() {
		var to string
		switch style {
		case "direct":
			to = "ssh://root@" + s.SSH.Addrs[h.Role]
		case "sudo":
			to = s.SSH.User + "@" + s.Alias(h.Role)
		default:
			to = s.Alias(h.Role)
		}
		text = strings.ReplaceAll(text, "host: netns:"+h.Namespace+"\n", "host: "+to+"\n")
	}
	text = strings.Replace(text, "\n", fmt.Sprintf(" over SSH (%s; --ssh-config %s)\n", style, s.SSH.Config), 1)
	return os.WriteFile(path, []byte(text), 0o644)
}

// Namespace maps a lab host name to its namespace: a role, a full
// namespace name, or mgmt / bastion for the management network.
func (s *State) Namespace(name string) (string, error) {
	if name == RoleMgmt || name == RoleBastion || (s.SSH != nil && (name == s.SSH.Mgmt || name == s.SSH.Bastion)) {
		if s.SSH == nil {
			return "", fmt.Errorf("lab %s has no management network (lab up --ssh)", s.Name)
		}
		if name == RoleMgmt || name == s.SSH.Mgmt {
			return s.SSH.Mgmt, nil
		}
		return s.SSH.Bastion, nil
	}
	h, err := s.ResolveHost(name)
	if err != nil {
		return "", err
	}
	return h.Namespace, nil
}

// downSSH removes what the management network left outside the lab's
// namespaces and state directory: the sudoers drop-in.
func downSSH(name string, st *State) error {
	var errs []error
	p := filepath.Join(sudoersDir, "lvsdoctor-lab-"+name)
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if st != nil && st.SSH != nil && st.SSH.Sudoers != "" && st.SSH.Sudoers != p {
		if err := os.Remove(st.SSH.Sudoers); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sshNamespaces are the namespaces of the management network of st.
func sshNamespaces(st *State) []string {
	if st == nil || st.SSH == nil {
		return nil
	}
	return []string{st.SSH.Mgmt, st.SSH.Bastion}
}
