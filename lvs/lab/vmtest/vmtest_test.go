package vmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lvsdoctor/lvsdoctor/lvs/lab"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
)

// vmFaults are the matrix rows the VM test runs on kernel IPVS: each must
// be diagnosed exactly (the healthy lab clean).
var vmFaults = []string{
	"healthy",
	"icmp-redirect-bypass",
	"director-no-forwarding",
	"director-firewall-drops-replies",
	"service-missing",
	"rs-weight-zero",
	"director-ftp-helper-missing",
	"persistence-needed",
}

// checkTimeout is the check's probe timeout in the guest: emulation is
// slow, the default 1 s loses replies.
const checkTimeout = "6s"

// extraVIP is where the record part adds services of its own (not a lab
// address, so nothing of the lab answers there).
const extraVIP = "203.0.113.102"

// guestScript is the guest side of TestMatrixOnKernelIPVS, run by busybox
// sh (which runs its own applets first: other binaries by full path).
// Every result is a file in /tmp/report, which /init sends back. One boot
// does everything: a boot costs as much as a part.
//
//  1. the fault matrix on kernel IPVS;
//  2. discover on a healthy lab (wrr 3:1, so that weights show) with a
//     host map and the client taken from the lab's own topology file, and
//     check of what it wrote; check --keepalived with a keepalived.conf of
//     the same lab but for one deliberate difference; discover without
//     the host map, whose FILL-IN lines check must refuse;
//  3. with ipvsadm in the guest (record mode), the director's table and
//     connections as /proc and ipvsadm show them: once as the lab made
//     them (after the checks' traffic, one connection held open), once
//     after ipvsadm added persistence and services of every other kind.
const guestScript = `R=/tmp/report
L=/bin/lvsdoctor
step() { read up _ </proc/uptime; echo "$1 $up" >>$R/steps; echo "LVSD-VM step $1" >/dev/console; }
# run NAME CMD...: CMD's stdout, stderr and exit code as NAME.out, NAME.err, NAME.rc
run() { n=$1; shift; "$@" >$R/$n.out 2>$R/$n.err; echo $? >$R/$n.rc; }

step matrix
run matrix $L lab matrix @MATRIX@

step lab-up
run labup $L lab up --datapath ipvs --weights 3,1 -o $R/lab.yaml
awk '$1 == "-" && $2 == "address:" {a = $3; sub(/:[0-9]+$/, "", a)} $1 == "host:" && a != "" {print a, $2; a = ""}' $R/lab.yaml | sort -u >$R/hosts.txt
field() { awk -v s="$1:" -v k="$2:" '$0 == s {on = 1; next} /^[^ ]/ {on = 0} on && $1 == k {print $2; exit}' $R/lab.yaml; }
client=$(field client host)
cip=$(field client address)
director=$(field director host)

step discover
run discover $L discover --director "$director" --hosts $R/hosts.txt --client "$client" --client-address "$cip" -o $R/disc.yaml
step check
run check $L check -f $R/disc.yaml --format json --timeout @TIMEOUT@
step keepalived
cat >$R/keepalived.conf <<'EOF'
@KEEPALIVED@
EOF
run keepalived $L check --keepalived $R/keepalived.conf --director "$director" --client "$client" --client-address "$cip" --hosts $R/hosts.txt --format json --timeout @TIMEOUT@

step fill-in
run fillin-discover $L discover --director "$director" --client "$client" --client-address "$cip" -o $R/fillin.yaml
run fillin-check $L check -f $R/fillin.yaml --timeout @TIMEOUT@

if [ -x /usr/sbin/ipvsadm ]; then
	d=${director#netns:}
	c=${client#netns:}
	cat >/tmp/capture.sh <<'EOF'
o=/tmp/report/rec-$1-
I=/usr/sbin/ipvsadm
set -e
cat /proc/net/ip_vs >${o}proc_ip_vs
cat /proc/net/ip_vs_conn >${o}proc_ip_vs_conn
$I -Ln >${o}ipvsadm_Ln
$I -Ln --stats >${o}ipvsadm_Ln_stats
$I -Ln --rate >${o}ipvsadm_Ln_rate
$I -Ln --thresholds >${o}ipvsadm_Ln_thresholds
$I -Ln --persistent-conn >${o}ipvsadm_Ln_persistent_conn
$I -Sn >${o}ipvsadm_Sn
$I -Lnc >${o}ipvsadm_Lnc
EOF
	step record-lab
	/usr/sbin/ipvsadm --version >$R/ipvsadm-version 2>&1
	# An ESTABLISHED entry besides what the checks left (TIME_WAIT,
	# CLOSE, UDP, FTP data): a keep-alive request on a connection kept open.
	$L lab exec $c -- /bin/sh -c "(printf 'GET / HTTP/1.1\r\nHost: lab\r\n\r\n'; sleep 30) | nc @VIP@ 80" >/dev/null 2>&1 &
	sleep 2
	run capture-lab $L lab exec $d -- /bin/sh /tmp/capture.sh lab
	step record-extra
	run configure-extra $L lab exec $d -- /bin/sh -c 'set -e; I=/usr/sbin/ipvsadm
		$I -E -t @VIP@:80 -s wrr -p 120
		$I -E -f 1 -s wrr -p 60
		$I -A -t @XVIP@:443 -s sh -b sh-fallback,sh-port -p 300 -M 255.255.255.0
		$I -a -t @XVIP@:443 -r @RIP1@:443 -g -w 2 -x 100 -y 10
		$I -a -t @XVIP@:443 -r @RIP2@:443 -i -w 0
		$I -A -u @XVIP@:5060 -s wlc -o
		$I -a -u @XVIP@:5060 -r @RIP1@:5060 -m -w 5
		$I -A -f 2 -s lc -p
		$I -a -f 2 -r @RIP2@ -g -w 1
		$I -A --sctp-service @XVIP@:9 -s rr
		$I -A -t [2001:db8::100]:80 -s rr -p 60 -M 64
		$I -a -t [2001:db8::100]:80 -r [2001:db8::2]:80 -m -w 1
		$I -A -f 3 -6 -s rr
		$I -a -f 3 -6 -r [2001:db8::3]:0 -g -w 1'
	# Persistence templates: the same client again, on both persistent services.
	run traffic-extra $L lab exec $c -- /bin/sh -c 'for i in 1 2 3; do wget -q -O /dev/null http://@VIP@/; wget -q -O /dev/null http://@VIP@:8080/; done'
	run capture-extra $L lab exec $d -- /bin/sh /tmp/capture.sh extra
fi
step done
`

// vmRecordModules are schedulers only the record part's services use.
var vmRecordModules = []string{"ip_vs_wlc", "ip_vs_lc"}

// TestMatrixOnKernelIPVS boots Debian's cloud kernel under qemu (TCG) and
// runs guestScript inside: `lvsdoctor lab matrix --datapath ipvs` for
// vmFaults, then discover and check on a healthy lab. It is opt-in
// (LVSDOCTOR_VMTEST=1): it takes minutes and needs qemu, so it skips
// otherwise, LVSDOCTOR_REQUIRE_ALL included. LVSDOCTOR_VMTEST_INSTALL=1
// lets it apt-get what is missing; LVSDOCTOR_VMTEST_FAULTS (comma
// separated) picks other rows; LVSDOCTOR_VMTEST_LVSDOCTOR names a static
// lvsdoctor to use instead of building one.
//
// LVSDOCTOR_VMTEST_RECORD=1 also puts Debian's ipvsadm into the guest and
// records the director's table as /proc and ipvsadm print it, into
// lvs/ipvs/testdata: fuzz seed corpora and the files of its
// TestRecorded*. Recording is not for every run: the recordings are
// committed, and a new one changes them (counters, ports, expiry).
func TestMatrixOnKernelIPVS(t *testing.T) {
	if os.Getenv("LVSDOCTOR_VMTEST") != "1" {
		t.Skip("opt-in VM test (boots a kernel with IPVS under qemu TCG for several minutes): set LVSDOCTOR_VMTEST=1 to run it; LVSDOCTOR_REQUIRE_ALL does not require it")
	}
	if os.Geteuid() != 0 {
		t.Skip("LVSDOCTOR_VMTEST=1 but not root: the VM test writes " + DefaultCacheDir + " (and apt-get with LVSDOCTOR_VMTEST_INSTALL=1)")
	}
	install := os.Getenv("LVSDOCTOR_VMTEST_INSTALL") == "1"
	if m := Missing(DefaultCacheDir); len(m) > 0 && !install {
		t.Skipf("LVSDOCTOR_VMTEST=1 but missing %s: apt-get install qemu-system-x86 busybox-static and apt-get download the kernel of linux-image-cloud-amd64 (or set LVSDOCTOR_VMTEST_INSTALL=1)", strings.Join(m, ", "))
	}
	record := os.Getenv("LVSDOCTOR_VMTEST_RECORD") == "1"
	faults := vmFaults
	if s := os.Getenv("LVSDOCTOR_VMTEST_FAULTS"); s != "" {
		faults = strings.Split(s, ",")
	}
	matrix := []string{"--datapath", "ipvs", "--format", "json", "--parallel", "1", "--timeout", checkTimeout}
	for _, f := range faults {
		matrix = append(matrix, "--fault", f)
	}
	addrs := strings.NewReplacer("@VIP@", lab.VIP.String(), "@XVIP@", extraVIP, "@RIP1@", lab.RIP(1).String(), "@RIP2@", lab.RIP(2).String())
	script := addrs.Replace(strings.NewReplacer("@MATRIX@", strings.Join(matrix, " "), "@TIMEOUT@", checkTimeout,
		"@KEEPALIVED@", keepalivedConf).Replace(guestScript))
	cfg := Config{Install: install, Script: script, Timeout: 40 * time.Minute, Lvsdoctor: os.Getenv("LVSDOCTOR_VMTEST_LVSDOCTOR")}
	if record {
		cfg.Ipvsadm = true
		cfg.Modules = vmRecordModules
	}
	var log bytes.Buffer
	cfg.Log = &log
	start := time.Now()
	res, err := Run(context.Background(), cfg)
	if res != nil {
		t.Logf("kernel %s: prepare %.1fs, boot to /init %.1fs, modules %.1fs, guest script %.1fs, qemu %.1fs, whole test %.1fs",
			res.Kernel, res.Prepare.Seconds(), res.Boot.Seconds(), res.Modules.Seconds(), res.Run.Seconds(), res.Total.Seconds(), time.Since(start).Seconds())
		if s := stepTimes(res.Files["steps"]); s != "" {
			t.Logf("guest steps: %s", s)
		}
		if len(res.ModuleErrs) > 0 {
			t.Logf("modules not loaded: %s", strings.Join(res.ModuleErrs, "; "))
		}
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, lastLines(log.String(), 40))
	}
	g := guest{res.Files}
	t.Run("discover", func(t *testing.T) { checkDiscover(t, g) })
	t.Run("keepalived", func(t *testing.T) { checkKeepalived(t, g) })
	t.Run("fill-in", func(t *testing.T) { checkFillIn(t, g) })
	// Last: CI keeps the end of this test's log, where the rows are.
	t.Run("matrix", func(t *testing.T) { checkMatrix(t, g) })
	if record {
		t.Run("record", func(t *testing.T) { writeRecordings(t, g, res.Kernel) })
	}
}

// guest holds what the guest script left in /tmp/report.
type guest struct{ files map[string][]byte }

func (g guest) file(t *testing.T, name string) []byte {
	t.Helper()
	b, ok := g.files[name]
	if !ok {
		t.Fatalf("the guest reported no %s (it reported %s)", name, strings.Join(g.names(), ", "))
	}
	return b
}

func (g guest) names() []string {
	var n []string
	for k := range g.files {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// ran is the result of one `run NAME CMD` of the script.
type ran struct {
	name           string
	rc             int
	stdout, stderr []byte
}

func (r ran) String() string {
	return fmt.Sprintf("%s: exit %d\nstdout: %s\nstderr: %s", r.name, r.rc, lastLines(string(r.stdout), 20), lastLines(string(r.stderr), 20))
}

func (g guest) run(t *testing.T, name string) ran {
	t.Helper()
	rc, err := strconv.Atoi(strings.TrimSpace(string(g.file(t, name+".rc"))))
	if err != nil {
		t.Fatalf("%s.rc: %v", name, err)
	}
	return ran{name: name, rc: rc, stdout: g.files[name+".out"], stderr: g.files[name+".err"]}
}

// stepTimes gives how long each step of the script took (guest clock).
func stepTimes(b []byte) string {
	var out []string
	var prev string
	var at float64
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		if prev != "" {
			out = append(out, fmt.Sprintf("%s %.1fs", prev, v-at))
		}
		prev, at = f[0], v
	}
	return strings.Join(out, ", ")
}

func checkMatrix(t *testing.T, g guest) {
	r := g.run(t, "matrix")
	var m struct {
		Rows []struct {
			Case struct {
				ID      string `json:"id"`
				Variant string `json:"variant"`
			} `json:"case"`
			Errors   []string `json:"errors"`
			Warnings []string `json:"warnings"`
			Outcome  string   `json:"outcome"`
			Detail   string   `json:"detail"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(r.stdout, &m); err != nil {
		t.Fatalf("matrix JSON: %v\n%s", err, r)
	}
	for _, r := range m.Rows {
		id := r.Case.ID
		if id == "" {
			id = "healthy"
		}
		if r.Case.Variant != "" {
			id += " --variant " + r.Case.Variant
		}
		if r.Outcome != "exact" && r.Outcome != "clean" {
			t.Errorf("%s on kernel IPVS: %s (%s) errors %v warnings %v", id, r.Outcome, r.Detail, r.Errors, r.Warnings)
		} else {
			t.Logf("%s on kernel IPVS: %s", id, r.Outcome)
		}
	}
	if len(m.Rows) == 0 {
		t.Fatalf("no matrix rows; %s", r)
	}
}

// checkResult is what the test reads of `check --format json`.
type checkResult struct {
	Verdict  string `json:"verdict"`
	Findings []struct {
		ID       string `json:"id"`
		Severity string `json:"severity"`
		Host     string `json:"host"`
		Service  string `json:"service"`
		Address  string `json:"address"`
		Summary  string `json:"summary"`
	} `json:"findings"`
	Steps []struct {
		ID      string `json:"id"`
		Host    string `json:"host"`
		Service string `json:"service"`
		Status  string `json:"status"`
		Summary string `json:"summary"`
	} `json:"steps"`
	Unchecked []struct {
		Host string `json:"host"`
		What string `json:"what"`
		Why  string `json:"why"`
	} `json:"unchecked"`
}

// checkRun reads one check of the script and logs its verdict, findings,
// the steps that did not pass (the first few: a host that could not be
// reached fails every step) and why things went unchecked.
func checkRun(t *testing.T, g guest, name string) (ran, checkResult) {
	t.Helper()
	r := g.run(t, name)
	var cr checkResult
	if err := json.Unmarshal(r.stdout, &cr); err != nil {
		t.Fatalf("check JSON: %v\n%s", err, r)
	}
	t.Logf("%s: exit %d, verdict %s, %d findings", name, r.rc, cr.Verdict, len(cr.Findings))
	for _, f := range cr.Findings {
		t.Logf("  finding %s (%s) %s %s: %s", f.ID, f.Severity, f.Host, f.Service, f.Summary)
	}
	const most = 3
	n := 0
	for _, s := range cr.Steps {
		if s.Status == "pass" {
			continue
		}
		if n++; n <= most {
			t.Logf("  step %s %s %s: %s: %s", s.ID, s.Host, s.Service, s.Status, s.Summary)
		}
	}
	if n > most {
		t.Logf("  and %d more steps that did not pass", n-most)
	}
	if len(cr.Unchecked) > 0 {
		t.Logf("  %s", unchecked(cr))
	}
	return r, cr
}

func healthy(r ran, cr checkResult) bool { return r.rc == 0 && cr.Verdict == "healthy" }

// checkDiscover: discover on the healthy lab, with the real servers'
// hosts from a host map, gives a topology that matches the lab's and on
// which check is healthy.
func checkDiscover(t *testing.T, g guest) {
	if r := g.run(t, "labup"); r.rc != 0 {
		t.Fatalf("lab up: %s", r)
	}
	if r := g.run(t, "discover"); r.rc != 0 {
		t.Fatalf("discover: %s", r)
	}
	t.Logf("host map: %s", strings.ReplaceAll(strings.TrimSpace(string(g.file(t, "hosts.txt"))), "\n", ", "))
	disc := g.file(t, "disc.yaml")
	labTop, err := topology.Parse("lab.yaml", g.file(t, "lab.yaml"))
	if err != nil {
		t.Fatalf("the lab's topology: %v", err)
	}
	discTop, err := topology.Parse("disc.yaml", disc)
	if err != nil {
		t.Fatalf("the discovered topology does not parse: %v", err)
	}
	if compareTopologies(t, labTop, discTop); t.Failed() {
		t.Fatalf("discovered topology:\n%s", disc)
	}
	for _, s := range discTop.Services {
		t.Logf("discovered %s vip %q %s persistent %v: %s", s, s.VIP, s.Scheduler, s.Persistent, strings.ReplaceAll(realServers(s), "\n", "; "))
	}

	// The firewall-mark service: the table knows only its mark, discover
	// takes the VIP and ports from the director's marking rule.
	if want, got := fwmarkOf(labTop), fwmarkOf(discTop); got == nil || len(got.Tests()) == 0 || !slices.Equal(got.Tests(), want.Tests()) {
		t.Errorf("the discovered firewall-mark service %+v is not tested like the lab's %+v", got, want)
	}
	r, cr := checkRun(t, g, "check")
	notInfo := 0
	for _, f := range cr.Findings {
		if f.Severity != "info" {
			notInfo++
		}
	}
	if !healthy(r, cr) || notInfo > 0 {
		t.Fatalf("check of the discovered topology: exit %d, verdict %s, %d findings besides info (want 0, healthy, none)\n%s\ndiscovered topology:\n%s",
			r.rc, cr.Verdict, notInfo, r.stderr, disc)
	}
}

// keepalivedConf is the lab of checkDiscover (lab up --weights 3,1) as
// keepalived.conf would configure it, but for one deliberate difference:
// rs2 of the web service has weight 2, where the table has 1.
const keepalivedConf = `global_defs {
    router_id LVSD_VM
}
virtual_server @VIP@ 80 {
    lb_algo wrr
    lb_kind NAT
    protocol TCP
    real_server @RIP1@ 80 {
        weight 3
    }
    real_server @RIP2@ 80 {
        weight 2
    }
}
virtual_server @VIP@ 53 {
    lb_algo wrr
    lb_kind NAT
    protocol UDP
    real_server @RIP1@ 53 {
        weight 3
    }
    real_server @RIP2@ 53 {
        weight 1
    }
}
virtual_server @VIP@ 21 {
    lb_algo wrr
    lb_kind NAT
    protocol TCP
    real_server @RIP1@ 21 {
        weight 3
    }
    real_server @RIP2@ 21 {
        weight 1
    }
}
virtual_server fwmark 1 {
    lb_algo wrr
    lb_kind NAT
    real_server @RIP1@ 8080 {
        weight 3
    }
    real_server @RIP2@ 8080 {
        weight 1
    }
}`

// checkKeepalived: check --keepalived on the live IPVS table reports
// exactly the one difference written into the file, as a warning, and
// the cluster is otherwise healthy (exit 0: warnings allowed).
func checkKeepalived(t *testing.T, g guest) {
	r, cr := checkRun(t, g, "keepalived")
	var got []string
	for _, f := range cr.Findings {
		if f.Severity != "info" {
			got = append(got, f.ID+" "+f.Address+" "+f.Summary)
		}
	}
	want := fmt.Sprintf("config-differs %s:80 real server %s:80 of tcp %s:80 has weight 1 in the IPVS table, configured 2", lab.RIP(2), lab.RIP(2), lab.VIP)
	if len(got) != 1 || got[0] != want {
		t.Errorf("findings (besides info) %q\nwant exactly %q", got, want)
	}
	if r.rc != 0 || cr.Verdict != "healthy" {
		t.Errorf("exit %d, verdict %s: want 0, healthy (a weight that differs is a warning)\n%s", r.rc, cr.Verdict, r.stderr)
	}
}

// unchecked says why the check left things unchecked, once per reason.
func unchecked(cr checkResult) string {
	seen := map[string]bool{}
	var why []string
	for _, u := range cr.Unchecked {
		if !seen[u.Why] {
			seen[u.Why] = true
			why = append(why, u.Why)
		}
	}
	return "unchecked: " + strings.Join(why, "; ")
}

// compareTopologies holds the discovered topology to the lab's: the same
// client and director, the same services (a firewall-mark one by its
// mark: the table has no VIP for it), schedulers, persistence and real
// servers with their hosts, forwarding and weights.
func compareTopologies(t *testing.T, labTop, disc *topology.Topology) {
	t.Helper()
	if disc.Client.Host != labTop.Client.Host || disc.Client.Address != labTop.Client.Address {
		t.Errorf("client %s %s, the lab's is %s %s", disc.Client.Host, disc.Client.Address, labTop.Client.Host, labTop.Client.Address)
	}
	if disc.Director.Host != labTop.Director.Host {
		t.Errorf("director %s, the lab's is %s", disc.Director.Host, labTop.Director.Host)
	}
	want := map[string]topology.Service{}
	for _, s := range labTop.Services {
		want[s.String()] = s
	}
	got := map[string]bool{}
	for _, s := range disc.Services {
		key := s.String()
		got[key] = true
		w, ok := want[key]
		if !ok {
			t.Errorf("discovered %s, which the lab does not have", key)
			continue
		}
		if s.Proto == "fwmark" && s.VIP != "" && s.VIP != w.VIP {
			t.Errorf("%s: vip %s, the lab's is %s", key, s.VIP, w.VIP)
		}
		if s.Scheduler != w.Scheduler {
			t.Errorf("%s: scheduler %s, the lab's is %s", key, s.Scheduler, w.Scheduler)
		}
		if s.Persistent != w.Persistent {
			t.Errorf("%s: persistent %v, the lab's is %v", key, s.Persistent, w.Persistent)
		}
		if g, w := realServers(s), realServers(w); g != w {
			t.Errorf("%s: real servers\n%s\nthe lab's:\n%s", key, g, w)
		}
	}
	for k := range want {
		if !got[k] {
			t.Errorf("the lab's %s was not discovered", k)
		}
	}
}

// fwmarkOf is the (first) firewall-mark service of a topology, or nil.
func fwmarkOf(top *topology.Topology) *topology.Service {
	for i, s := range top.Services {
		if s.Proto == "fwmark" {
			return &top.Services[i]
		}
	}
	return nil
}

func realServers(s topology.Service) string {
	var l []string
	for _, r := range s.RealServers {
		l = append(l, fmt.Sprintf("%s host %s forward %s weight %d", r.Address, r.Host, r.Forward, r.W()))
	}
	sort.Strings(l)
	return strings.Join(l, "\n")
}

// checkFillIn: without a host map the real servers' hosts are FILL-IN,
// and check refuses the file as a usage error (exit 2) that says so.
func checkFillIn(t *testing.T, g guest) {
	if r := g.run(t, "fillin-discover"); r.rc != 0 {
		t.Fatalf("discover without --hosts: %s", r)
	}
	f := g.file(t, "fillin.yaml")
	if !bytes.Contains(f, []byte("host: FILL-IN")) {
		t.Fatalf("discover without --hosts wrote no FILL-IN host:\n%s", f)
	}
	r := g.run(t, "fillin-check")
	if r.rc != 2 || !bytes.Contains(r.stderr, []byte("FILL-IN")) {
		t.Fatalf("check of a file with FILL-IN hosts: want exit 2 naming FILL-IN, got %s", r)
	}
	t.Logf("check refuses the FILL-IN file: exit 2, %s", strings.TrimSpace(string(r.stderr)))
}

// recTargets maps a recorded source to the fuzz target that parses it
// ("" for ipvsadm -Lnc, which no parser reads).
var recTargets = map[string]string{
	"proc_ip_vs":                 "FuzzProcIPVS",
	"proc_ip_vs_conn":            "FuzzProcIPVSConn",
	"ipvsadm_Ln":                 "FuzzIpvsadmLn",
	"ipvsadm_Ln_stats":           "FuzzIpvsadmLn",
	"ipvsadm_Ln_rate":            "FuzzIpvsadmLn",
	"ipvsadm_Ln_thresholds":      "FuzzIpvsadmLn",
	"ipvsadm_Ln_persistent_conn": "FuzzIpvsadmLn",
	"ipvsadm_Sn":                 "FuzzIpvsadmSn",
	"ipvsadm_Lnc":                "",
}

// recordDir is lvs/ipvs/testdata from this package's directory (where
// go test runs it).
var recordDir = filepath.Join("..", "..", "ipvs", "testdata")

// writeRecordings stores the recorded outputs as plain files
// (testdata/vm/SET/SOURCE.txt, read by lvs/ipvs's TestRecorded*) and as
// seed corpus entries of the fuzz target that parses each
// (testdata/fuzz/TARGET/vm-SET-SOURCE). The targets take a string, so
// the entries are string(...), which go test checks against the
// target's arguments.
func writeRecordings(t *testing.T, g guest, kernel string) {
	for _, set := range []string{"lab", "extra"} {
		for _, step := range []string{"configure-" + set, "traffic-" + set, "capture-" + set} {
			if _, ok := g.files[step+".rc"]; ok {
				if r := g.run(t, step); r.rc != 0 {
					t.Fatalf("%s", r)
				}
			}
		}
	}
	// Everything is read before anything is removed: a failed recording
	// leaves the committed one in place.
	writes := map[string][]byte{}
	for _, set := range []string{"lab", "extra"} {
		for src, target := range recTargets {
			b, ok := g.files["rec-"+set+"-"+src]
			if !ok || len(b) == 0 {
				t.Fatalf("no recording of %s (%s)", src, set)
			}
			writes[filepath.Join("vm", set, src+".txt")] = b
			if target != "" {
				writes[filepath.Join("fuzz", target, "vm-"+set+"-"+src)] = []byte("go test fuzz v1\nstring(" + strconv.Quote(string(b)) + ")\n")
			}
		}
	}
	hz, err := kernelHZ(kernel)
	if err != nil {
		t.Fatal(err)
	}
	prov := fmt.Sprintf("recorded by LVSDOCTOR_VMTEST=1 LVSDOCTOR_VMTEST_RECORD=1 go test -run TestMatrixOnKernelIPVS ./lvs/lab/vmtest\nkernel: %s\nhz: %d\nipvsadm: %s\n",
		kernel, hz, strings.TrimSpace(string(g.file(t, "ipvsadm-version"))))
	writes[filepath.Join("vm", "provenance.txt")] = []byte(prov)

	// Every run replaces the whole recording: no stale file of an older one.
	old, _ := filepath.Glob(filepath.Join(recordDir, "fuzz", "*", "vm-*"))
	for _, p := range old {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(filepath.Join(recordDir, "vm")); err != nil {
		t.Fatal(err)
	}
	for name, b := range writes {
		p := filepath.Join(recordDir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %d files into %s (%s)", len(writes), recordDir, strings.ReplaceAll(strings.TrimSpace(prov), "\n", "; "))
}

// kernelHZ reads CONFIG_HZ from the booted kernel's config: /proc/net/ip_vs
// prints persistence timeouts in its ticks.
func kernelHZ(version string) (int, error) {
	k, err := FindKernel(DefaultCacheDir)
	if err != nil {
		return 0, err
	}
	if k.Version != version {
		return 0, fmt.Errorf("kernel %s booted, %s found", version, k.Version)
	}
	b, err := os.ReadFile(filepath.Join(k.Root, "boot", "config-"+version))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CONFIG_HZ="); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("no CONFIG_HZ in the config of kernel %s", version)
}

// TestCpio checks the newc writer's framing: 110-byte headers, names and
// data padded to 4 bytes, the trailer last.
func TestCpio(t *testing.T) {
	var b bytes.Buffer
	if err := writeCpio(&b, []cpioFile{{name: "init", mode: 0o100755, data: []byte("#!/bin/sh\n")}, {name: "dev", mode: 0o40755}}); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	if !strings.HasPrefix(s, "070701") || b.Len()%4 != 0 || !strings.Contains(s, "TRAILER!!!\x00") {
		t.Fatalf("bad archive %q", s)
	}
	// First entry: header (110) + "init\0" (5) padded to 116, data 10 padded to 12.
	if got := s[116 : 116+10]; got != "#!/bin/sh\n" {
		t.Fatalf("data at 116: %q", got)
	}
	if !strings.HasPrefix(s[128:], "070701") {
		t.Fatalf("second header not at 128: %q", s[128:140])
	}
}

// TestStepTimes: the script's step marks become durations.
func TestStepTimes(t *testing.T) {
	if got := stepTimes([]byte("matrix 5.10\nlab-up 90.35\ndone 101.00\n")); got != "matrix 85.2s, lab-up 10.7s" {
		t.Fatalf("got %q", got)
	}
}

// TestElfClosure: the closure of a dynamically linked host binary names
// its loader and reaches libc.
func TestElfClosure(t *testing.T) {
	dirs := []string{"/" + libDir, "/usr/" + libDir}
	interp, libs, err := elfClosure("/bin/ls", dirs)
	if err != nil {
		t.Skipf("no dynamically linked /bin/ls with Debian's library layout here: %v", err)
	}
	if !strings.Contains(interp, "ld-linux") {
		t.Errorf("interpreter %q", interp)
	}
	if !slices.ContainsFunc(libs, func(l string) bool { return filepath.Base(l) == "libc.so.6" }) {
		t.Errorf("libc.so.6 not in %v", libs)
	}
	for _, l := range libs {
		if filepath.Base(l) == filepath.Base(interp) {
			t.Errorf("the interpreter %s is listed as a library too", l)
		}
	}
	if _, _, err := elfClosure("/bin/busybox", dirs); err == nil {
		t.Error("static busybox: want an error (no interpreter)")
	}
}
