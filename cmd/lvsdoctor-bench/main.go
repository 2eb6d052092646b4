// Command lvsdoctor-bench times `lvsdoctor check` end to end on the lab:
// the healthy lab, each fault, and a lab with many real servers, several
// runs each, and prints medians, the ratio of the big lab to the small one,
// and peak memory of the controller and of the agents.
//
//	sudo go run ./cmd/lvsdoctor-bench -n 5
//
// With -ssh it times the healthy check over SSH instead (a lab built with
// --ssh, the check started inside its management namespace): netns, a new
// build's first SSH run, a first run (the agent uploaded), the second
// (--keep-agent reuses it), a run without --keep-agent, and the floor
// under them all: the hosts reached and `sudo -n true` run on each.
// sshd runs every command through the login's shell, and bash reads
// ~/.bashrc for it: -ssh-user USER (an existing non-root login, reached
// through sudo -n) measures lvsdoctor without what root's ~/.bashrc does.
//
// It builds lvsdoctor itself, so it measures the binary an operator runs.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lvsdoctor/lvsdoctor/checks"
	"github.com/lvsdoctor/lvsdoctor/checks/labtest"
	"github.com/lvsdoctor/lvsdoctor/lvs/lab"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/connect"
)

type sample struct {
	wall         time.Duration
	cpu          time.Duration // the machine's busy CPU meanwhile, all processes
	ctlKB, agtKB int64
	exit         int
	// traffic is how long the check's Q.1-Q.4 step took (from "Q.1-Q.4"
	// to "stopping captures" in its -v progress), where it was asked for.
	traffic time.Duration
}

func main() {
	runs := flag.Int("n", 5, "runs per case")
	big := flag.Int("realservers", 50, "real servers of the big lab (0 skips it)")
	faults := flag.String("faults", "rs-no-listener,rs-wrong-gateway,director-no-forwarding,director-no-masquerade,director-firewall-drops-replies,director-rpfilter-requests", "faults to time, comma-separated (\"\" for none)")
	sshMode := flag.Bool("ssh", false, "time the healthy check over SSH instead (lab up --ssh): netns, SSH first runs (upload), SSH --keep-agent second run, SSH without --keep-agent")
	sshUser := flag.String("ssh-user", "", "with -ssh: log in as this existing user (through sudo -n) instead of root, e.g. one whose shell reads no ~/.bashrc")
	sshDirect := flag.Bool("ssh-direct", false, "with -ssh: reach the hosts directly (ssh://[USER@]ADDR) instead of through the lab's bastion (ProxyJump)")
	trafficOnly := flag.String("traffic-only", "", "(run by the bench itself, in the client's namespace) open only the test connections a check of this topology file opens, and exit")
	flag.Parse()
	switch *trafficOnly {
	case "":
	case "none": // how long this process takes to start and end
		return
	default:
		os.Exit(runTraffic(*trafficOnly))
	}
	if err := lab.CheckPrivileges(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	dir, err := os.MkdirTemp("", "lvsdoctor-bench")
	check(err)
	defer os.RemoveAll(dir)
	bin, err := labtest.BuildBinary(dir)
	check(err)
	if *sshMode {
		measureSSH(bin, dir, *runs, *sshUser, *sshDirect)
		return
	}

	small := measureLab(bin, dir, 2, *runs, strings.FieldsFunc(*faults, func(r rune) bool { return r == ',' }))
	if *big > 0 {
		bigHealthy := measureLab(bin, dir, *big, *runs, nil)
		fmt.Printf("\nhealthy check, %d real servers vs 2: %.2fx (target < 2x)\n", *big,
			float64(median(bigHealthy["healthy"]).wall)/float64(median(small["healthy"]).wall))
		measurePaired(bin, dir, *big, *runs)
	}
}

// runTraffic opens the test connections a check of the topology in file
// opens (checks.TestTraffic), all bursts at once as the client's agent
// does, and nothing else: no capture, no facts, no agent. It says how
// many were not answered, and fails if any.
func runTraffic(file string) int {
	top, err := topology.Load(file)
	check(err)
	var wg sync.WaitGroup
	var bad atomic.Int64
	for _, t := range checks.TestTraffic(top, checks.Options{}) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, c := range connect.Run(context.Background(), t.ConnectArgs).Conns {
				if c.Result != connect.OK {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := bad.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "%d test connections not answered\n", n)
		return 1
	}
	return 0
}

// rateLimitPause goes between two checks: the kernel's ICMP rate limit
// (1 s per peer) would otherwise make back-to-back runs see different
// traceroutes.
const rateLimitPause = 1100 * time.Millisecond

// upLab builds lab name with k real servers (removing an earlier one of
// that name) and writes its topology file into dir; the caller takes it
// down.
func upLab(dir, name string, k int) string {
	_ = lab.Down(name)
	t0 := time.Now()
	st, err := lab.Up(context.Background(), lab.Options{Name: name, RealServers: k})
	check(err)
	fmt.Printf("lab with %d real servers up in %s\n", k, time.Since(t0).Round(time.Millisecond))
	topo := filepath.Join(dir, name+".yaml")
	check(st.WriteTopologyFile(topo))
	return topo
}

// measurePaired times the healthy check on both labs at once, round by
// round (two real servers, then big): the two medians above are minutes
// apart, long enough for a shared machine to change speed; the median of
// the rounds' ratios is not.
func measurePaired(bin, dir string, big, runs int) {
	var topos [2]string
	for i, k := range []int{2, big} {
		name := fmt.Sprintf("lvsdbenchp%d", i)
		defer lab.Down(name)
		topos[i] = upLab(dir, name, k)
	}
	var out [2][]sample
	for r := 0; r < runs; r++ {
		for i := range topos {
			out[i] = append(out[i], runCheck(bin, topos[i]))
			time.Sleep(rateLimitPause)
		}
	}
	fmt.Printf("paired rounds: 2 rs %s (busy CPU %s), %d rs %s (busy CPU %s), median of the rounds' ratios %.2fx\n",
		ms(median(out[0]).wall), ms(medianCPU(out[0])), big, ms(median(out[1]).wall), ms(medianCPU(out[1])), pairedRatio(out[1], out[0]))
	measureFloor(bin, topos, big, runs)
}

// measureFloor bounds from below what the big lab's check can take on
// this machine, from parts no check can skip, round by round:
//
//   - the check's test traffic alone, from a process in the client's
//     namespace (runTraffic: the same connections, nothing captured),
//     less that process's own start (the same process opening none);
//   - the small lab's check less its Q.1-Q.4 step (its -v progress):
//     reaching the hosts, their facts, starting and stopping captures,
//     the counters after, classifying.
//
// The big check has both to do, one after the other (captures start
// before the first test packet and stop after the last), the second for
// 25 times as many hosts: their sum, over the small check, is a ratio
// the big one cannot go below.
func measureFloor(bin string, topos [2]string, big, runs int) {
	self, err := os.Executable()
	check(err)
	var clientNS [2]string
	for i, topo := range topos {
		t, err := topology.Load(topo)
		check(err)
		clientNS[i] = strings.TrimPrefix(t.Client.Host, "netns:")
	}
	traffic := func(i int) sample {
		return timed(clientNS[i], exec.Command(self, "-traffic-only", topos[i]), nil)
	}
	var small, base []sample
	var tr [2][]sample
	for r := 0; r < runs; r++ {
		small = append(small, runCheckIn("", bin, topos[0], "-v"))
		time.Sleep(rateLimitPause)
		base = append(base, timed(clientNS[0], exec.Command(self, "-traffic-only", "none"), nil))
		for i := range topos {
			tr[i] = append(tr[i], traffic(i))
			time.Sleep(rateLimitPause)
		}
	}
	start := median(base).wall
	alone := func(ss []sample) time.Duration { return median(ss).wall - start }
	rest := median(small).wall - medianTraffic(small)
	fmt.Printf("the test traffic alone (the check's connections, nothing captured, %s of process start taken off): 2 rs %s (busy CPU %s), %d rs %s (busy CPU %s)\n",
		ms(start), ms(alone(tr[0])), ms(medianCPU(tr[0])), big, ms(alone(tr[1])), ms(medianCPU(tr[1])))
	fmt.Printf("the 2-rs check %s, of which its Q.1-Q.4 step %s: the rest %s\n", ms(median(small).wall), ms(medianTraffic(small)), ms(rest))
	fmt.Printf("floor of the %d-rs check: %s + %s = %s, %.2fx the 2-rs check (before anything the %d more hosts need)\n",
		big, ms(alone(tr[1])), ms(rest), ms(alone(tr[1])+rest), float64(alone(tr[1])+rest)/float64(median(small).wall), big-2)
}

// measureLab builds one lab and times the check on it, healthy and with
// each fault, tearing the lab down at the end whatever happens.
func measureLab(bin, dir string, k, runs int, faults []string) map[string][]sample {
	name := "lvsdbench"
	ctx := context.Background()
	defer lab.Down(name)
	topo := upLab(dir, name, k)
	out := map[string][]sample{}
	cases := append([]string{"healthy"}, faults...)
	fmt.Printf("%-34s %8s %8s %8s %9s %12s %12s\n", "case", "median", "min", "max", "busy CPU", "ctl MiB", "agent MiB")
	for _, c := range cases {
		if c != "healthy" {
			check(lab.Clear(ctx, name))
			id, host := lab.ParseFaultSpec(c)
			check(lab.Inject(ctx, name, id, host, ""))
		}
		for i := 0; i < runs; i++ {
			out[c] = append(out[c], runCheck(bin, topo))
			time.Sleep(rateLimitPause)
		}
		m := median(out[c])
		lo, hi := minmax(out[c])
		fmt.Printf("%-34s %8s %8s %8s %9s %12.1f %12.1f   (exit %d)\n", fmt.Sprintf("%s (%d rs)", c, k), ms(m.wall), ms(lo), ms(hi),
			ms(medianCPU(out[c])), float64(maxCtl(out[c]))/1024, float64(maxAgt(out[c]))/1024, m.exit)
	}
	return out
}

// measureSSH builds a lab with --ssh and times the healthy check over
// netns (from this namespace) and over SSH through the bastion (from the
// management namespace, as 'lab exec mgmt -- lvsdoctor check' does):
//
//   - a new build's first run with --keep-agent: nothing cached anywhere
//     (compress, upload, check the hash);
//   - a first run with --keep-agent: no copy on the hosts, the compressed
//     copy the controller keeps (under XDG_CACHE_HOME, here the bench's own
//     directory) from an earlier run;
//   - the second run with --keep-agent (the hosts' copy is reused);
//   - a run without --keep-agent, which uploads to a private directory
//     every time.
//
// The hosts' cached copy of the bench's binary is removed before each
// first run (it may be there from an earlier bench of the same build) and
// at the end, with every other copy the bench made.
func measureSSH(bin, dir string, runs int, sshUser string, direct bool) {
	name := "lvsdbenchssh"
	_ = lab.Down(name)
	t0 := time.Now()
	st, err := lab.Up(context.Background(), lab.Options{Name: name, RealServers: 2, SSH: true, SSHUser: sshUser})
	check(err)
	defer lab.Down(name)
	fmt.Printf("lab with 2 real servers and sshd up in %s\n", time.Since(t0).Round(time.Millisecond))
	topo := filepath.Join(dir, "lab2.yaml")
	check(st.WriteTopologyFile(topo))
	sshTopo := st.SSH.Topology
	home, _ := os.UserHomeDir()
	if sshUser != "" {
		u, err := user.Lookup(sshUser)
		check(err)
		sshTopo, home = st.SSH.SudoTopo, u.HomeDir
		fmt.Printf("logging in as %s (shell from /etc/passwd, sudo -n)\n", sshUser)
	}
	if direct {
		sshTopo = directTopology(st, sshTopo, sshUser, filepath.Join(dir, "ssh-direct.yaml"))
		fmt.Println("reaching the hosts directly, not through the bastion")
	}
	// The controller's cache (the compressed agent): the bench's own.
	xdg := filepath.Join(dir, "cache")
	check(os.Setenv("XDG_CACHE_HOME", xdg))
	cache := filepath.Join(home, ".cache", "lvsdoctor")
	_, statErr := os.Stat(cache)
	hadCache := statErr == nil
	_, statErr = os.Stat(filepath.Dir(cache))
	hadParent := statErr == nil
	before := map[string]bool{}
	old, _ := filepath.Glob(filepath.Join(cache, "lvsdoctor-*"))
	for _, f := range old {
		before[f] = true
	}
	mine := filepath.Join(cache, "lvsdoctor-"+fileHash(bin)[:16])
	clean := func() {
		os.Remove(mine)
		now, _ := filepath.Glob(filepath.Join(cache, "lvsdoctor-*"))
		for _, f := range now {
			if !before[f] {
				os.Remove(f)
			}
		}
	}
	defer func() {
		clean()
		if !hadCache {
			os.Remove(cache) // only if empty
		}
		if !hadParent {
			os.Remove(filepath.Dir(cache)) // ~/.cache, which the upload made
		}
	}()
	ssh := []string{"--ssh-config", st.SSH.Config}
	keep := []string{"--ssh-config", st.SSH.Config, "--keep-agent"}
	out := map[string][]sample{}
	// The floor: every host reached as a check reaches it, through sudo
	// -n, but the "agent" is true(1), so nothing is uploaded or checked:
	// what the SSH connections, sshd and sudo cost before any agent runs
	// (each host then ends inconclusive, exit 3).
	floor := []string{"--ssh-config", st.SSH.Config, "--agent", "/bin/true"}
	order := []string{"netns", "ssh, new build (nothing cached)", "ssh first run (upload)", "ssh --keep-agent (2nd run)", "ssh without --keep-agent", "ssh floor: reach, sudo -n true"}
	pause := func() { time.Sleep(rateLimitPause) }
	for i := 0; i < runs; i++ {
		out[order[0]] = append(out[order[0]], runCheckIn("", bin, topo))
		pause()
		clean()
		check(os.RemoveAll(xdg))
		out[order[1]] = append(out[order[1]], runCheckIn(st.SSH.Mgmt, bin, sshTopo, keep...))
		pause()
		clean()
		out[order[2]] = append(out[order[2]], runCheckIn(st.SSH.Mgmt, bin, sshTopo, keep...))
		pause()
		out[order[3]] = append(out[order[3]], runCheckIn(st.SSH.Mgmt, bin, sshTopo, keep...))
		pause()
		out[order[4]] = append(out[order[4]], runCheckIn(st.SSH.Mgmt, bin, sshTopo, ssh...))
		pause()
		out[order[5]] = append(out[order[5]], runCheckIn(st.SSH.Mgmt, bin, sshTopo, floor...))
		pause()
	}
	netns := median(out[order[0]]).wall
	fmt.Printf("%-34s %8s %8s %8s %7s %8s %9s %12s %12s\n", "healthy check, 2 rs", "median", "min", "max", "/netns", "paired", "busy CPU", "ctl MiB", "agent MiB")
	for _, c := range order {
		m := median(out[c])
		lo, hi := minmax(out[c])
		fmt.Printf("%-34s %8s %8s %8s %6.2fx %7.2fx %9s %12.1f %12.1f   (exit %d)\n", c, ms(m.wall), ms(lo), ms(hi), float64(m.wall)/float64(netns),
			pairedRatio(out[c], out[order[0]]), ms(medianCPU(out[c])), float64(maxCtl(out[c]))/1024, float64(maxAgt(out[c]))/1024, m.exit)
	}
	fmt.Println("paired: the median of each round's ratio to that round's netns run, which a machine that drifts faster or slower during the bench moves less")
	fmt.Println("targets (issue #4): --keep-agent 2nd run at most 1.5x netns, a first run that uploads at most 2.5x")
}

// directTopology rewrites the lab's SSH topology file from to name each
// host by its management address (ssh://[user@]ADDR), so that no
// connection goes through the bastion, and returns the new file's path.
func directTopology(st *lab.State, from, user, path string) string {
	b, err := os.ReadFile(from)
	check(err)
	text := string(b)
	at := ""
	if user != "" {
		at = user + "@"
	}
	for role, addr := range st.SSH.Addrs {
		alias := st.Alias(role)
		text = strings.ReplaceAll(text, "host: "+at+alias+"\n", "host: ssh://"+at+addr+"\n")
		text = strings.ReplaceAll(text, "host: "+alias+"\n", "host: ssh://"+at+addr+"\n")
	}
	if strings.Contains(text, "host: "+at+st.Name+"-") || strings.Contains(text, "host: "+st.Name+"-") {
		check(fmt.Errorf("%s: a host still named by its alias after rewriting it to its address", from))
	}
	check(os.WriteFile(path, []byte(text), 0o644))
	return path
}

// fileHash is the SHA-256 of a file, hex: what names the hosts' cached
// copy of the agent.
func fileHash(path string) string {
	f, err := os.Open(path)
	check(err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	check(err)
	return hex.EncodeToString(h.Sum(nil))
}

func runCheck(bin, topo string) sample { return runCheckIn("", bin, topo) }

// runCheckIn times one check started from a thread in namespace ns ("":
// this one), so that its connections start there. extra "-v" has the
// check's progress read for its Q.1-Q.4 step (sample.traffic).
func runCheckIn(ns, bin, topo string, extra ...string) sample {
	args := []string{"check", "-f", topo, "--format", "json"}
	if !slices.Contains(extra, "-v") {
		args = append(args, "-q")
	}
	cmd := exec.Command(bin, append(args, extra...)...)
	cmd.Env = append(os.Environ(), "LVSDOCTOR_STATS=1")
	var stderr bytes.Buffer
	s := timed(ns, cmd, &stderr)
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.ctlKB = ru.Maxrss
	}
	var q, stop float64
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		line := sc.Text()
		if at, what, ok := progressLine(line); ok {
			switch {
			case strings.HasPrefix(what, "Q.1-Q.4"):
				q = at
			case strings.HasPrefix(what, "stopping captures"):
				stop = at
			}
		}
		f := strings.Fields(line)
		if len(f) >= 5 && f[0] == "lvsdoctor-stats" && f[3] == "maxrss_kb" {
			n, err := strconv.ParseInt(f[4], 10, 64)
			switch {
			case err != nil:
			case f[1] == "controller":
				// Its own peak; the wait status's covers the agents too.
				s.ctlKB = n
			case n > s.agtKB:
				s.agtKB = n
			}
		}
	}
	if stop > q && q > 0 {
		s.traffic = time.Duration((stop - q) * float64(time.Second))
	}
	return s
}

// progressLine splits a line of the check's -v progress, " 0.048s WHAT".
func progressLine(l string) (float64, string, bool) {
	at, what, ok := strings.Cut(strings.TrimSpace(l), "s ")
	if !ok {
		return 0, "", false
	}
	f, err := strconv.ParseFloat(at, 64)
	return f, what, err == nil
}

// timed runs cmd from a thread in namespace ns ("": this one) and says
// how long it took, and the machine's busy CPU meanwhile (every process:
// the lab's hosts and the kernel's work for their packets too). A run that
// exits non-zero keeps its exit code; one that cannot start ends the bench.
func timed(ns string, cmd *exec.Cmd, stderr *bytes.Buffer) sample {
	if stderr != nil {
		cmd.Stderr = stderr
	}
	cpu0 := busyCPU()
	start := time.Now()
	var err error
	if ns == "" {
		err = cmd.Run()
	} else if err = lab.RunIn(ns, cmd.Start); err == nil {
		err = cmd.Wait()
	}
	s := sample{wall: time.Since(start), cpu: busyCPU() - cpu0}
	if ee, ok := err.(*exec.ExitError); ok {
		s.exit = ee.ExitCode()
	} else {
		check(err)
	}
	return s
}

// busyCPU is the time all CPUs of the machine have spent on anything but
// idling and waiting for I/O since boot, from /proc/stat (in its ticks of
// 10 ms).
func busyCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	check(err)
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		check(err)
		if i != 3 && i != 4 && i < 8 { // idle, iowait; guest time is in user already
			busy += n
		}
	}
	return time.Duration(busy) * 10 * time.Millisecond
}

func medianCPU(ss []sample) time.Duration {
	return medianOf(ss, func(s sample) time.Duration { return s.cpu })
}
func medianTraffic(ss []sample) time.Duration {
	return medianOf(ss, func(s sample) time.Duration { return s.traffic })
}

func medianOf(ss []sample, of func(sample) time.Duration) time.Duration {
	c := make([]time.Duration, len(ss))
	for i, s := range ss {
		c[i] = of(s)
	}
	slices.Sort(c)
	return c[len(c)/2]
}

func median(ss []sample) sample {
	c := append([]sample(nil), ss...)
	sort.Slice(c, func(i, j int) bool { return c[i].wall < c[j].wall })
	return c[len(c)/2]
}

// pairedRatio is the median of ss[i] / base[i]: runs of one round, a few
// seconds apart.
func pairedRatio(ss, base []sample) float64 {
	r := make([]float64, len(ss))
	for i := range ss {
		r[i] = float64(ss[i].wall) / float64(base[i].wall)
	}
	sort.Float64s(r)
	return r[len(r)/2]
}

func minmax(ss []sample) (time.Duration, time.Duration) {
	lo, hi := ss[0].wall, ss[0].wall
	for _, s := range ss {
		lo, hi = min(lo, s.wall), max(hi, s.wall)
	}
	return lo, hi
}

func maxCtl(ss []sample) (m int64) {
	for _, s := range ss {
		m = max(m, s.ctlKB)
	}
	return
}

func maxAgt(ss []sample) (m int64) {
	for _, s := range ss {
		m = max(m, s.agtKB)
	}
	return
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d)/1e6) }

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "lvsdoctor-bench:", err)
		os.Exit(1)
	}
}
