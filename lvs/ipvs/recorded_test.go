package ipvs

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The files of testdata/vm are real kernel and ipvsadm output, recorded
// in a VM by lvs/lab/vmtest (LVSDOCTOR_VMTEST_RECORD=1; provenance.txt
// names the kernel and ipvsadm). Two recordings of the director of
// `lvsdoctor lab up --datapath ipvs --weights 3,1`:
//
//   - lab: as the lab configured it, after check's test traffic and with
//     one connection held open;
//   - extra: after ipvsadm made the HTTP and the firewall-mark services
//     persistent and added services of the kinds the lab lacks (sh with
//     flags, ops, direct routing, tunnel, thresholds, SCTP, IPv6, default
//     persistence), then sent traffic to the persistent services.
//
// The same recordings seed the fuzz targets (testdata/fuzz/*/vm-*).

// Addresses of the recordings: the lab's VIP and real servers, and the
// VIP where the record script adds its services (vmtest's extraVIP).
const (
	recVIP  = "203.0.113.100"
	recXVIP = "203.0.113.102"
	recRS1  = "198.18.0.2"
	recRS2  = "198.18.0.3"
	recCIP  = "203.0.113.10"
)

type wantDest struct {
	addr    string
	forward string
	weight  int
	u, l    uint32
}

type wantSvc struct {
	proto   string
	addr    string
	mark    uint32
	ipv6    bool
	sched   string
	flags   []string
	timeout uint32 // persistence in seconds; 0: not persistent
	netmask string
	dests   []wantDest
}

func (w wantSvc) String() string {
	return Service{Proto: w.proto, Addr: w.addr, Mark: w.mark}.String()
}

// labWant is the lab's table (wrr 3:1, masquerading), with the persistence
// timeouts of the HTTP and the firewall-mark services.
func labWant(http, fwmark uint32) []wantSvc {
	svc := func(proto string, port int, mark uint32, timeout uint32) wantSvc {
		s := wantSvc{proto: proto, mark: mark, sched: "wrr", timeout: timeout}
		if mark == 0 {
			s.addr = recVIP + ":" + strconv.Itoa(port)
		}
		if timeout > 0 {
			s.netmask = "255.255.255.255"
		}
		p := ":" + strconv.Itoa(port)
		s.dests = []wantDest{{addr: recRS1 + p, forward: "masq", weight: 3}, {addr: recRS2 + p, forward: "masq", weight: 1}}
		return s
	}
	return []wantSvc{svc("tcp", 80, 0, http), svc("udp", 53, 0, 0), svc("tcp", 21, 0, 0), svc("fwmark", 8080, 1, fwmark)}
}

// recordings are the two tables as the record script configured them.
var recordings = map[string][]wantSvc{
	"lab": labWant(0, 0),
	"extra": append(labWant(120, 60),
		wantSvc{proto: "tcp", addr: recXVIP + ":443", sched: "sh", flags: []string{"sh-fallback", "sh-port"}, timeout: 300, netmask: "255.255.255.0",
			dests: []wantDest{{addr: recRS1 + ":443", forward: "route", weight: 2, u: 100, l: 10}, {addr: recRS2 + ":443", forward: "tunnel", weight: 0}}},
		wantSvc{proto: "udp", addr: recXVIP + ":5060", sched: "wlc", flags: []string{"ops"},
			dests: []wantDest{{addr: recRS1 + ":5060", forward: "masq", weight: 5}}},
		wantSvc{proto: "fwmark", mark: 2, sched: "lc", timeout: DefaultPersistence, netmask: "255.255.255.255",
			dests: []wantDest{{addr: recRS2 + ":0", forward: "route", weight: 1}}},
		wantSvc{proto: "sctp", addr: recXVIP + ":9", sched: "rr"},
		wantSvc{proto: "tcp", addr: "[2001:db8::100]:80", ipv6: true, sched: "rr", timeout: 60, netmask: "/64",
			dests: []wantDest{{addr: "[2001:db8::2]:80", forward: "masq", weight: 1}}},
		wantSvc{proto: "fwmark", mark: 3, ipv6: true, sched: "rr",
			dests: []wantDest{{addr: "[2001:db8::3]:0", forward: "route", weight: 1}}},
	),
}

// recView is one recorded source and what it shows of a table.
type recView struct {
	file  string
	parse func(io.Reader) (*Table, error)
	// Which columns the source prints; what it does not print the parser
	// must leave at its "unknown" value.
	sched, forward, weight, thresholds, stats, counters bool
	// flags: "all", or "ops" for /proc (the kernel prints no scheduler flags).
	flags string
	// markFamily: an fwmark service says it is IPv6 (/proc does not).
	markFamily bool
	// jiffies: persistence timeouts are in kernel ticks.
	jiffies bool
}

var recViews = []recView{
	{file: "proc_ip_vs", parse: ParseProcIPVS, sched: true, forward: true, weight: true, counters: true, flags: "ops", jiffies: true},
	{file: "ipvsadm_Ln", parse: ParseIpvsadmList, sched: true, forward: true, weight: true, counters: true, flags: "all", markFamily: true},
	{file: "ipvsadm_Ln_stats", parse: ParseIpvsadmList, stats: true, markFamily: true},
	{file: "ipvsadm_Ln_rate", parse: ParseIpvsadmList, stats: true, markFamily: true},
	{file: "ipvsadm_Ln_thresholds", parse: ParseIpvsadmList, sched: true, thresholds: true, counters: true, flags: "all", markFamily: true},
	{file: "ipvsadm_Ln_persistent_conn", parse: ParseIpvsadmList, sched: true, weight: true, counters: true, flags: "all", markFamily: true},
	// ipvsadm 1.31's -Sn leaves out the thresholds (-x, -y).
	{file: "ipvsadm_Sn", parse: ParseIpvsadmSave, sched: true, forward: true, weight: true, flags: "all", markFamily: true},
}

func readRec(t *testing.T, set, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "vm", set, file+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recHZ is the recorded kernel's CONFIG_HZ, from provenance.txt.
func recHZ(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "vm", "provenance.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "hz: "); ok {
			hz, err := strconv.Atoi(v)
			if err != nil || hz <= 0 {
				t.Fatalf("provenance.txt: hz %q", v)
			}
			return hz
		}
	}
	t.Fatal("provenance.txt: no hz line")
	return 0
}

// TestRecordedTables parses every recorded table with its parser and
// holds the result to what the record script configured.
func TestRecordedTables(t *testing.T) {
	hz := recHZ(t)
	for set, want := range recordings {
		for _, v := range recViews {
			t.Run(set+"/"+v.file, func(t *testing.T) {
				tb, err := v.parse(strings.NewReader(string(readRec(t, set, v.file))))
				if err != nil {
					t.Fatal(err)
				}
				if v.jiffies {
					tb.SetHZ(hz)
				}
				if v.file != "ipvsadm_Sn" && (tb.Version != "1.2.1" || tb.ConnTableSize != 4096) {
					t.Errorf("version %q size %d, want 1.2.1 and 4096", tb.Version, tb.ConnTableSize)
				}
				compareTable(t, v, tb, want)
			})
		}
	}
}

func compareTable(t *testing.T, v recView, tb *Table, want []wantSvc) {
	t.Helper()
	if len(tb.Services) != len(want) {
		var got []string
		for _, s := range tb.Services {
			got = append(got, s.String())
		}
		t.Errorf("%d services (%s), want %d", len(tb.Services), strings.Join(got, ", "), len(want))
	}
	for _, w := range want {
		s := tb.Find(w.proto, w.addr, w.mark)
		if s == nil {
			t.Errorf("%s missing", w)
			continue
		}
		if (w.proto != "fwmark" || v.markFamily) && s.IPv6 != w.ipv6 {
			t.Errorf("%s: IPv6 %v, want %v", w, s.IPv6, w.ipv6)
		}
		wantSched := ""
		if v.sched {
			wantSched = w.sched
		}
		if s.Scheduler != wantSched {
			t.Errorf("%s: scheduler %q, want %q", w, s.Scheduler, wantSched)
		}
		var wantFlags []string
		for _, f := range w.flags {
			if v.flags == "all" || (v.flags == "ops" && f == "ops") {
				wantFlags = append(wantFlags, f)
			}
		}
		if !slices.Equal(s.Flags, wantFlags) {
			t.Errorf("%s: flags %v, want %v", w, s.Flags, wantFlags)
		}
		comparePersistence(t, v, s, w)
		if v.stats && s.Stats == nil {
			t.Errorf("%s: no counters", w)
		}
		compareDests(t, v, s, w)
	}
}

func comparePersistence(t *testing.T, v recView, s *Service, w wantSvc) {
	t.Helper()
	if v.stats {
		// --stats and --rate do not print persistence.
		if s.Persistent {
			t.Errorf("%s: persistent from a --stats or --rate listing", w)
		}
		return
	}
	if s.Persistent != (w.timeout > 0) || s.Timeout != w.timeout {
		t.Errorf("%s: persistent %v timeout %d, want timeout %d", w, s.Persistent, s.Timeout, w.timeout)
	}
	if s.Netmask == w.netmask {
		return
	}
	t.Errorf("%s: netmask %q, want %q", w, s.Netmask, w.netmask)
}

func compareDests(t *testing.T, v recView, s *Service, w wantSvc) {
	t.Helper()
	if len(s.Dests) != len(w.dests) {
		t.Errorf("%s: %d real servers, want %d", w, len(s.Dests), len(w.dests))
	}
	for _, wd := range w.dests {
		d := s.Dest(wd.addr)
		if d == nil {
			t.Errorf("%s: real server %s missing", w, wd.addr)
			continue
		}
		fwd, weight := "", -1
		if v.forward {
			fwd = wd.forward
		}
		if v.weight {
			weight = wd.weight
		}
		if d.Forward != fwd || d.Weight != weight {
			t.Errorf("%s -> %s: forward %q weight %d, want %q %d", w, wd.addr, d.Forward, d.Weight, fwd, weight)
		}
		var u, l uint32
		if v.thresholds {
			u, l = wd.u, wd.l
		}
		if d.UThreshold != u || d.LThreshold != l {
			t.Errorf("%s -> %s: thresholds %d %d, want %d %d", w, wd.addr, d.UThreshold, d.LThreshold, u, l)
		}
		if v.counters != (d.ActiveC >= 0 && d.InactiveC >= 0) {
			t.Errorf("%s -> %s: connection counts %d %d (the source shows them: %v)", w, wd.addr, d.ActiveC, d.InactiveC, v.counters)
		}
		if v.stats && d.Stats == nil {
			t.Errorf("%s -> %s: no counters", w, wd.addr)
		}
	}
}

// TestRecordedDetails holds the recordings to what the traffic and the
// ipvsadm options of the record script leave besides the configuration.
func TestRecordedDetails(t *testing.T) {
	for _, set := range []string{"lab", "extra"} {
		// check tested every lab service: each has connections.
		tb, err := ParseIpvsadmList(strings.NewReader(string(readRec(t, set, "ipvsadm_Ln_stats"))))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range labWant(0, 0) {
			if s := tb.Find(w.proto, w.addr, w.mark); s == nil || s.Stats == nil || s.Stats.Conns == 0 || s.Stats.InPkts == 0 {
				t.Errorf("%s: %s: no connections in --stats: %+v", set, w, s)
			}
		}
	}
	// One client, so one persistence template per persistent service.
	tb, err := ParseIpvsadmList(strings.NewReader(string(readRec(t, "extra", "ipvsadm_Ln_persistent_conn"))))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range labWant(120, 60) {
		s := tb.Find(w.proto, w.addr, w.mark)
		n := 0
		for _, d := range s.Dests {
			n += d.PersistC
		}
		if want := map[bool]int{true: 1, false: 0}[w.timeout > 0]; n != want {
			t.Errorf("%s: %d persistence templates, want %d", w, n, want)
		}
	}
	// -Sn names the tunnel type of a tunnel real server.
	tb, err = ParseIpvsadmSave(strings.NewReader(string(readRec(t, "extra", "ipvsadm_Sn"))))
	if err != nil {
		t.Fatal(err)
	}
	if d := tb.Find("tcp", recXVIP+":443", 0).Dest(recRS2 + ":443"); d.Tunnel != "ipip" {
		t.Errorf("tunnel type %q, want ipip", d.Tunnel)
	}
}

// TestRecordedConns reads the recorded /proc/net/ip_vs_conn: the lab's
// client, services and real servers, the connection held open, the
// persistence templates, and the same entries as `ipvsadm -Lnc`
// (recorded just after: entries may only have expired in between).
func TestRecordedConns(t *testing.T) {
	virtual := map[string]bool{}
	for _, p := range []string{"80", "53", "21", "8080"} {
		virtual[recVIP+":"+p] = true
	}
	for _, set := range []string{"lab", "extra"} {
		t.Run(set, func(t *testing.T) {
			cs, err := ParseProcConn(strings.NewReader(string(readRec(t, set, "proc_ip_vs_conn"))))
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			states := map[string]int{}
			for _, c := range cs {
				states[c.State]++
				seen[c.Proto+" "+c.Client+" "+c.Virtual+" "+c.Dest] = true
				host, _, _ := strings.Cut(c.Client, ":")
				dest, _, _ := strings.Cut(c.Dest, ":")
				if host != recCIP || (dest != recRS1 && dest != recRS2) {
					t.Errorf("entry %+v: not from the lab's client to a real server", c)
				}
				// FTP data connections go to the VIP's passive ports.
				if _, vport, _ := strings.Cut(c.Virtual, ":"); !virtual[c.Virtual] && c.Proto == "tcp" && c.Dest != recRS1+":"+vport && c.Dest != recRS2+":"+vport {
					t.Errorf("entry %+v: not to a lab service", c)
				}
			}
			if states["ESTABLISHED"] == 0 || states["TIME_WAIT"] == 0 || states["UDP"] == 0 {
				t.Errorf("states %v: want the held ESTABLISHED connection and check's TIME_WAIT and UDP entries", states)
			}
			if set == "extra" {
				// Templates: client port 0; an fwmark one has protocol IP
				// and the mark as its virtual address.
				if !hasConn(cs, "tcp", recCIP+":0", recVIP+":80") || !hasConn(cs, "ip", recCIP+":0", "0.0.0.1:0") {
					t.Errorf("no persistence templates for tcp %s:80 and fwmark 1 in %+v", recVIP, cs)
				}
			}
			lnc := parseLnc(t, readRec(t, set, "ipvsadm_Lnc"))
			if len(lnc) == 0 || len(lnc) > len(cs) {
				t.Errorf("ipvsadm -Lnc has %d entries, /proc/net/ip_vs_conn %d", len(lnc), len(cs))
			}
			for _, k := range lnc {
				if !seen[k] {
					t.Errorf("ipvsadm -Lnc entry %q is not in /proc/net/ip_vs_conn", k)
				}
			}
		})
	}
}

func hasConn(cs []Conn, proto, client, virtual string) bool {
	for _, c := range cs {
		if c.Proto == proto && c.Client == client && c.Virtual == virtual {
			return true
		}
	}
	return false
}

// parseLnc reads `ipvsadm -Lnc` ("pro expire state source virtual
// destination"), which no parser of the package reads, as keys
// "proto client virtual dest".
func parseLnc(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if n <= 2 {
			continue // "IPVS connection entries" and the column titles
		}
		if len(f) != 6 {
			t.Fatalf("ipvsadm -Lnc line %d: %q", n, sc.Text())
		}
		out = append(out, strings.ToLower(f[0])+" "+f[3]+" "+f[4]+" "+f[5])
	}
	return out
}
