// Package vmtest runs lvsdoctor on a kernel with IPVS inside a qemu
// virtual machine (/work/shared/IPVS-VM.md): the host kernel may lack
// IPVS, so the ipvs datapath of the lab and the IPVS table readers are
// tested on Debian's cloud kernel, booted with software emulation (TCG).
//
// Run puts together an initramfs (busybox-static, the closure of the IPVS,
// conntrack, nftables, veth and bridge modules, a static lvsdoctor and an
// /init script, and on request Debian's ipvsadm with its libraries),
// boots it, and has /init run lvsdoctor with the given arguments or a
// script. The guest prints the output, and every file the script left in
// /tmp/report, base64-framed on the serial console, then the exit code,
// then powers off; qemu's own exit code is always 0, so the host reads
// the result from the console.
package vmtest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// DefaultCacheDir holds the downloaded kernel, the built binary and the
// initramfs.
const DefaultCacheDir = "/var/cache/lvsdoctor-vmtest"

// Packages are the Debian packages the VM test needs.
var Packages = []string{"qemu-system-x86", "busybox-static", "linux-image-cloud-amd64"}

// Modules are loaded by /init (with their dependencies); a module missing
// from the kernel is reported and skipped.
var Modules = []string{
	"libcrc32c", "nfnetlink", "nf_conntrack", "nf_defrag_ipv4", "nf_defrag_ipv6", "nf_nat",
	"nf_conntrack_netlink", "nf_conntrack_ftp", "nf_nat_ftp",
	"ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "ip_vs_ftp",
	"nf_tables", "nft_nat", "nft_chain_nat", "nft_ct", "nft_masq", "nft_reject", "nft_reject_ipv4",
	"nft_reject_inet", "nft_numgen", "nft_hash", "nft_fib_ipv4", "nft_fib_inet", "nft_limit", "nft_log",
	"nf_reject_ipv4", "nf_log_syslog",
	"inet_diag", "tcp_diag", "udp_diag", "raw_diag",
	"veth", "llc", "stp", "bridge", "xfrm_user", "dummy", "sch_netem",
}

// Config of one run.
type Config struct {
	CacheDir string // DefaultCacheDir when empty
	// Install, when set, installs what is missing with apt-get (qemu,
	// busybox-static) and downloads the cloud kernel package (extracted
	// into CacheDir, not installed).
	Install bool
	// Lvsdoctor is a static lvsdoctor binary; when empty it is built
	// with CGO_ENABLED=0 (go build, from within the module).
	Lvsdoctor string
	// Args are lvsdoctor's arguments inside the guest.
	Args []string
	// Script, when set, is a busybox sh script run instead of lvsdoctor
	// (lvsdoctor is /bin/lvsdoctor; its stdout and stderr are reported).
	Script string
	Memory string // "512M" when empty
	// Timeout bounds the whole VM run (boot to poweroff); 20 min when 0.
	Timeout time.Duration
	// Ipvsadm puts Debian's ipvsadm into the guest as /usr/sbin/ipvsadm
	// (see IpvsadmFiles); with Install its packages are downloaded.
	Ipvsadm bool
	// Modules are loaded after the package's Modules (schedulers that
	// only a script uses, say).
	Modules []string
	// Log receives progress and the guest's console (nil: discarded).
	Log io.Writer
}

// Result of a run.
type Result struct {
	Kernel     string        // kernel version booted
	Prepare    time.Duration // building the initramfs (and the binary)
	Boot       time.Duration // qemu start to the guest's /init
	Modules    time.Duration // /init start to modules loaded (guest clock)
	Run        time.Duration // lvsdoctor inside (guest clock)
	Total      time.Duration // qemu start to exit
	ExitCode   int           // lvsdoctor's exit code inside the guest
	Stdout     []byte        // lvsdoctor's stdout
	Stderr     []byte        // lvsdoctor's stderr
	ModuleErrs []string      // modules that did not load
	Console    string        // the whole serial console
	// Files are what the guest left in /tmp/report (a script's results),
	// by file name.
	Files map[string][]byte
}

func (c *Config) logf(format string, a ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, "vmtest: "+format+"\n", a...)
	}
}

// Kernel is a kernel image with its module tree.
type Kernel struct {
	Version string
	Vmlinuz string
	Root    string // directory holding lib/modules/Version
}

// FindKernel looks for a cloud kernel (the stock Debian one has IPVS as
// modules): installed under /boot, or extracted into cacheDir/kroot.
func FindKernel(cacheDir string) (*Kernel, error) {
	for _, root := range []string{"/", filepath.Join(cacheDir, "kroot")} {
		vms, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*-cloud-amd64"))
		sort.Strings(vms)
		for i := len(vms) - 1; i >= 0; i-- {
			v := strings.TrimPrefix(filepath.Base(vms[i]), "vmlinuz-")
			if _, err := os.Stat(filepath.Join(root, "lib/modules", v, "kernel/net/netfilter/ipvs/ip_vs.ko")); err == nil {
				return &Kernel{Version: v, Vmlinuz: vms[i], Root: root}, nil
			}
		}
	}
	return nil, fmt.Errorf("no cloud kernel with IPVS modules in /boot or %s/kroot (apt-get download linux-image-cloud-amd64's kernel package and dpkg-deb -x it there, or run with Install)", cacheDir)
}

// Missing lists what the VM test needs and does not find.
func Missing(cacheDir string) []string {
	if cacheDir == "" {
		cacheDir = DefaultCacheDir
	}
	var m []string
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		m = append(m, "qemu-system-x86 (qemu-system-x86_64)")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		m = append(m, "busybox-static (/bin/busybox)")
	}
	if _, err := FindKernel(cacheDir); err != nil {
		m = append(m, "linux-image-cloud-amd64 (a kernel with IPVS modules)")
	}
	return m
}

func run(ctx context.Context, log io.Writer, dir string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	if log != nil {
		log.Write(b.Bytes())
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, lastLines(b.String(), 10))
	}
	return nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// install gets the packages: qemu and busybox installed, the kernel
// package downloaded and extracted (installing it would build an
// initramfs for the host and change its boot loader).
func install(ctx context.Context, c *Config) error {
	var pkgs []string
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		pkgs = append(pkgs, "qemu-system-x86")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		pkgs = append(pkgs, "busybox-static")
	}
	if len(pkgs) > 0 {
		c.logf("apt-get install %s", strings.Join(pkgs, " "))
		if err := run(ctx, c.Log, "/", "apt-get", append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)...); err != nil {
			return err
		}
	}
	if _, err := FindKernel(c.CacheDir); err == nil {
		return nil
	}
	// linux-image-cloud-amd64 depends on the versioned image package.
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", "linux-image-cloud-amd64").Output()
	if err != nil {
		return fmt.Errorf("apt-cache depends linux-image-cloud-amd64: %w", err)
	}
	pkg := ""
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
			pkg = f[1]
		}
	}
	if pkg == "" {
		return errors.New("apt-cache depends linux-image-cloud-amd64: no linux-image-* dependency")
	}
	debs, _ := filepath.Glob(filepath.Join(c.CacheDir, pkg+"_*.deb"))
	if len(debs) == 0 {
		c.logf("apt-get download %s", pkg)
		if err := run(ctx, c.Log, c.CacheDir, "apt-get", "download", pkg); err != nil {
			return err
		}
		debs, _ = filepath.Glob(filepath.Join(c.CacheDir, pkg+"_*.deb"))
	}
	if len(debs) == 0 {
		return fmt.Errorf("apt-get download %s: no .deb in %s", pkg, c.CacheDir)
	}
	kroot := filepath.Join(c.CacheDir, "kroot")
	c.logf("dpkg-deb -x %s %s", debs[len(debs)-1], kroot)
	return run(ctx, c.Log, c.CacheDir, "dpkg-deb", "-x", debs[len(debs)-1], kroot)
}

// BuildLvsdoctor builds a static lvsdoctor into dst (from the module that
// holds the current directory).
func BuildLvsdoctor(ctx context.Context, dst string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags=-s -w", "-o", dst, "github.com/lvsdoctor/lvsdoctor/cmd/lvsdoctor")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build lvsdoctor: %w\n%s", err, out)
	}
	return nil
}

// Run prepares the initramfs, boots the VM and returns what the guest
// reported.
func Run(ctx context.Context, c Config) (*Result, error) {
	if c.CacheDir == "" {
		c.CacheDir = DefaultCacheDir
	}
	if c.Memory == "" {
		c.Memory = "512M"
	}
	if c.Timeout == 0 {
		c.Timeout = 20 * time.Minute
	}
	if err := os.MkdirAll(c.CacheDir, 0o755); err != nil {
		return nil, err
	}
	if c.Install {
		if err := install(ctx, &c); err != nil {
			return nil, err
		}
	}
	if m := Missing(c.CacheDir); len(m) > 0 {
		return nil, fmt.Errorf("missing: %s", strings.Join(m, ", "))
	}
	k, err := FindKernel(c.CacheDir)
	if err != nil {
		return nil, err
	}
	res := &Result{Kernel: k.Version}
	t0 := time.Now()
	bin := c.Lvsdoctor
	if bin == "" {
		bin = filepath.Join(c.CacheDir, "lvsdoctor")
		c.logf("go build (CGO_ENABLED=0) -> %s", bin)
		if err := BuildLvsdoctor(ctx, bin); err != nil {
			return nil, err
		}
	}
	var extra []File
	if c.Ipvsadm {
		if extra, err = IpvsadmFiles(ctx, &c); err != nil {
			return nil, err
		}
	}
	initrd := filepath.Join(c.CacheDir, "initrd.gz")
	size, err := BuildInitramfs(k, bin, c.Args, c.Script, append(Modules[:len(Modules):len(Modules)], c.Modules...), extra, initrd)
	if err != nil {
		return nil, err
	}
	res.Prepare = time.Since(t0)
	c.logf("initramfs %s: %.1f MB (kernel %s), prepared in %.1fs", initrd, float64(size)/1e6, k.Version, res.Prepare.Seconds())

	qctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	cmd := exec.CommandContext(qctx, "qemu-system-x86_64", "-accel", "tcg", "-m", c.Memory, "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot", "-net", "none",
		"-kernel", k.Vmlinuz, "-initrd", initrd,
		"-append", "console=ttyS0 quiet panic=-1 rdinit=/init")
	cmd.Stdin = nil
	cmd.Stderr = c.Log
	cmd.WaitDelay = 2 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	var console strings.Builder
	sections := map[string]*strings.Builder{}
	section := ""
	exit := -1
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		console.WriteString(line + "\n")
		i := strings.Index(line, "LVSD-VM ")
		if i < 0 {
			if section == "" && c.Log != nil {
				fmt.Fprintf(c.Log, "guest: %s\n", line)
			}
			if b := sections[section]; b != nil {
				b.WriteString(strings.TrimSpace(line))
			}
			continue
		}
		f := strings.Fields(line[i+len("LVSD-VM "):])
		if len(f) == 0 {
			continue
		}
		if c.Log != nil {
			fmt.Fprintf(c.Log, "guest: %s\n", line[i:])
		}
		switch f[0] {
		case "init":
			res.Boot = time.Since(start)
		case "modules":
			if len(f) > 1 {
				res.Modules = guestDur(f[1])
			}
		case "modfail":
			res.ModuleErrs = append(res.ModuleErrs, strings.Join(f[1:], " "))
		case "begin":
			if len(f) > 1 {
				section = strings.Join(f[1:], " ")
				sections[section] = &strings.Builder{}
			}
		case "end":
			section = ""
		case "exit":
			if len(f) > 1 {
				exit, _ = strconv.Atoi(f[1])
			}
			if len(f) > 2 {
				res.Run = guestDur(f[2])
			}
		}
	}
	werr := cmd.Wait()
	res.Total = time.Since(start)
	res.Console = console.String()
	res.ExitCode = exit
	res.Files = map[string][]byte{}
	var bad []string
	for name, b := range sections {
		data, err := base64.StdEncoding.DecodeString(b.String())
		if err != nil {
			bad = append(bad, name)
		}
		switch {
		case name == "stdout":
			res.Stdout = data
		case name == "stderr":
			res.Stderr = data
		case strings.HasPrefix(name, "file "):
			res.Files[strings.TrimPrefix(name, "file ")] = data
		}
	}
	if qctx.Err() != nil {
		return res, fmt.Errorf("VM did not power off within %s (console: %s)", c.Timeout, lastLines(res.Console, 20))
	}
	if exit < 0 {
		return res, fmt.Errorf("no result line from the guest (qemu: %v); console:\n%s", werr, lastLines(res.Console, 30))
	}
	if len(bad) > 0 {
		// A kernel message in the middle of a section garbles it: better
		// an error than a truncated output that fails later, obscurely.
		sort.Strings(bad)
		return res, fmt.Errorf("garbled console sections from the guest: %s", strings.Join(bad, ", "))
	}
	return res, nil
}

// guestDur parses the centiseconds /init prints (from /proc/uptime).
func guestDur(s string) time.Duration {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return time.Duration(n) * 10 * time.Millisecond
}

// initScript is /init: mount, load the modules, run lvsdoctor, report,
// power off. Times are centiseconds of /proc/uptime. A script leaves its
// results as files in /tmp/report; /init sends each back as a section
// (Result.Files), so a script need not frame its own output.
const initScript = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /run /tmp /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/netns /var /tmp/report
ln -s /run /var/run
cs() { read up _ < /proc/uptime; echo $((${up%.*} * 100 + 1${up#*.} - 100)); }
t0=$(cs)
echo "LVSD-VM init $t0 $(uname -r)"
for m in $(cat /etc/lvsd-modules); do
	modprobe "$m" 2>/tmp/modprobe.err || echo "LVSD-VM modfail $m $(cat /tmp/modprobe.err)"
done
t1=$(cs)
echo "LVSD-VM modules $((t1 - t0))"
ip link set lo up
cd /tmp
if [ -s /etc/lvsd-script ]; then
	sh /etc/lvsd-script >/tmp/out 2>/tmp/err
else
	/bin/lvsdoctor $(cat /etc/lvsd-args) >/tmp/out 2>/tmp/err
fi
rc=$?
t2=$(cs)
echo "LVSD-VM begin stderr"
base64 /tmp/err
echo "LVSD-VM end"
echo "LVSD-VM begin stdout"
base64 /tmp/out
echo "LVSD-VM end"
for f in /tmp/report/*; do
	[ -f "$f" ] || continue
	echo "LVSD-VM begin file ${f##*/}"
	base64 "$f"
	echo "LVSD-VM end"
done
echo "LVSD-VM exit $rc $((t2 - t1))"
poweroff -f
`

// File is an extra file of the initramfs.
type File struct {
	Name string // path inside the guest, without the leading /
	Mode uint32 // permission bits
	Data []byte
}

// BuildInitramfs writes a gzipped newc cpio to dst and returns its size:
// busybox, lvsdoctor, /init with args or script, the closure of modules
// and extra files.
func BuildInitramfs(k *Kernel, lvsdoctor string, args []string, script string, modules []string, extra []File, dst string) (int64, error) {
	var files []cpioFile
	add := func(f cpioFile) { files = append(files, f) }
	dirs := map[string]bool{}
	for _, d := range []string{"bin", "sbin", "dev", "etc", "proc", "sys", "run", "tmp", "lib", "lib/modules"} {
		dirs[d] = true
		add(cpioFile{name: d, mode: 0o40755})
	}
	// The kernel's unpacker creates no parent directories.
	mkdirs := func(name string) {
		var parts []string
		for d := filepath.Dir(name); d != "." && d != "/" && !dirs[d]; d = filepath.Dir(d) {
			parts = append(parts, d)
		}
		for i := len(parts) - 1; i >= 0; i-- {
			dirs[parts[i]] = true
			add(cpioFile{name: parts[i], mode: 0o40755})
		}
	}
	add(cpioFile{name: "dev/console", mode: 0o20600, rdevMajor: 5, rdevMinor: 1})
	add(cpioFile{name: "dev/null", mode: 0o20666, rdevMajor: 1, rdevMinor: 3})
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return 0, err
	}
	add(cpioFile{name: "bin/busybox", mode: 0o100755, data: bb})
	add(cpioFile{name: "bin/sh", mode: 0o120777, data: []byte("busybox")})
	ld, err := os.ReadFile(lvsdoctor)
	if err != nil {
		return 0, err
	}
	add(cpioFile{name: "bin/lvsdoctor", mode: 0o100755, data: ld})
	add(cpioFile{name: "init", mode: 0o100755, data: []byte(initScript)})
	add(cpioFile{name: "etc/lvsd-modules", mode: 0o100644, data: []byte(strings.Join(modules, "\n") + "\n")})
	add(cpioFile{name: "etc/lvsd-args", mode: 0o100644, data: []byte(strings.Join(args, " ") + "\n")})
	add(cpioFile{name: "etc/lvsd-script", mode: 0o100644, data: []byte(script)})
	add(cpioFile{name: "etc/passwd", mode: 0o100644, data: []byte("root:x:0:0:root:/:/bin/sh\n")})
	add(cpioFile{name: "etc/group", mode: 0o100644, data: []byte("root:x:0:\n")})
	for _, f := range extra {
		mkdirs(f.Name)
		add(cpioFile{name: f.Name, mode: 0o100000 | f.Mode&0o7777, data: f.Data})
	}

	mods, err := moduleClosure(k, modules)
	if err != nil {
		return 0, err
	}
	// A modules tree of just the closure; busybox depmod writes its
	// modules.dep (the host has no kmod).
	stage, err := os.MkdirTemp("", "lvsd-vm-mods")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(stage)
	mdir := filepath.Join("lib/modules", k.Version)
	for _, m := range mods {
		b, err := os.ReadFile(filepath.Join(k.Root, mdir, m))
		if err != nil {
			return 0, err
		}
		p := filepath.Join(stage, mdir, m)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return 0, err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return 0, err
		}
	}
	for _, f := range []string{"modules.builtin", "modules.order"} {
		if b, err := os.ReadFile(filepath.Join(k.Root, mdir, f)); err == nil {
			os.WriteFile(filepath.Join(stage, mdir, f), b, 0o644)
		}
	}
	if out, err := exec.Command("/bin/busybox", "depmod", "-b", stage, k.Version).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("busybox depmod: %w: %s", err, out)
	}
	err = filepath.Walk(filepath.Join(stage, "lib"), func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(stage, p)
		if fi.IsDir() {
			if !dirs[rel] {
				dirs[rel] = true
				add(cpioFile{name: rel, mode: 0o40755})
			}
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		add(cpioFile{name: rel, mode: 0o100644, data: b})
		return nil
	})
	if err != nil {
		return 0, err
	}
	f, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err := writeCpio(zw, files); err != nil {
		f.Close()
		return 0, err
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return 0, err
	}
	fi, err := f.Stat()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// moduleClosure returns the module files (relative to lib/modules/VER)
// of names and their dependencies, from the kernel's modules.dep (written
// with busybox depmod when the package did not ship one).
func moduleClosure(k *Kernel, names []string) ([]string, error) {
	mdir := filepath.Join(k.Root, "lib/modules", k.Version)
	depf := filepath.Join(mdir, "modules.dep")
	if _, err := os.Stat(depf); err != nil {
		if k.Root == "/" {
			return nil, fmt.Errorf("%s missing", depf)
		}
		if out, err := exec.Command("/bin/busybox", "depmod", "-b", k.Root, k.Version).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("busybox depmod: %w: %s", err, out)
		}
	}
	b, err := os.ReadFile(depf)
	if err != nil {
		return nil, err
	}
	deps := map[string][]string{}
	byName := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		mod, rest, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		n := strings.TrimSuffix(filepath.Base(mod), ".ko")
		n = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, ".ko.xz"), ".ko.zst"), ".ko")
		byName[strings.ReplaceAll(n, "-", "_")] = mod
	}
	seen := map[string]bool{}
	var out []string
	var visit func(string)
	visit = func(m string) {
		if seen[m] {
			return
		}
		seen[m] = true
		out = append(out, m)
		for _, d := range deps[m] {
			visit(d)
		}
	}
	for _, n := range names {
		if m, ok := byName[n]; ok {
			visit(m)
		}
	}
	if !seen[byName["ip_vs"]] {
		return nil, fmt.Errorf("kernel %s has no ip_vs module", k.Version)
	}
	sort.Strings(out)
	return out, nil
}

type cpioFile struct {
	name                 string
	mode                 uint32
	data                 []byte
	rdevMajor, rdevMinor uint32
}

// writeCpio writes the newc format the kernel unpacks.
func writeCpio(w io.Writer, files []cpioFile) error {
	pad := func(n int) []byte { return make([]byte, (4-n%4)%4) }
	hdr := func(ino int, f cpioFile) error {
		nlink := 1
		if f.mode&0o170000 == 0o040000 {
			nlink = 2
		}
		h := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, f.mode, 0, 0, nlink, 0, len(f.data), 0, 0, f.rdevMajor, f.rdevMinor, len(f.name)+1, 0)
		if _, err := io.WriteString(w, h+f.name+"\x00"); err != nil {
			return err
		}
		if _, err := w.Write(pad(110 + len(f.name) + 1)); err != nil {
			return err
		}
		if _, err := w.Write(f.data); err != nil {
			return err
		}
		_, err := w.Write(pad(len(f.data)))
		return err
	}
	for i, f := range files {
		if err := hdr(i+1, f); err != nil {
			return err
		}
	}
	return hdr(0, cpioFile{name: "TRAILER!!!"})
}
