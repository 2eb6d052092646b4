package ipvs

import (
	"errors"
	"fmt"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	cfipvs "github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"

	"net/netip"
)

func open(t testing.TB, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func readFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// identity renders what the table says about services and real servers,
// leaving out counters and what only some sources show (flags).
func identity(t *Table) string {
	var b strings.Builder
	for _, s := range t.Services {
		fmt.Fprintf(&b, "%s v6=%v sched=%s persistent=%v timeout=%d mask=%s\n", s, s.IPv6, s.Scheduler, s.Persistent, s.Timeout, s.Netmask)
		for _, d := range s.Dests {
			fmt.Fprintf(&b, "  %s %s w=%d\n", d.Addr, d.Forward, d.Weight)
		}
	}
	return b.String()
}

const wantIdentity = `tcp 203.0.113.100:80 v6=false sched=rr persistent=false timeout=0 mask=
  198.18.0.3:80 masq w=1
  198.18.0.2:80 masq w=2
tcp 203.0.113.100:443 v6=false sched=wlc persistent=true timeout=300 mask=255.255.255.255
  198.18.0.2:443 masq w=1
  198.18.0.3:443 masq w=0
udp 203.0.113.100:53 v6=false sched=sh persistent=true timeout=360 mask=255.255.255.0
  198.18.0.2:53 masq w=1
sctp 203.0.113.100:9 v6=false sched=rr persistent=false timeout=0 mask=
tcp [2001:db8::64]:80 v6=true sched=rr persistent=false timeout=0 mask=
  [2001:db8::2]:80 tunnel w=1
fwmark 1 v6=false sched=wlc persistent=true timeout=300 mask=255.255.255.255
  198.18.0.2:0 route w=1
  198.18.0.3:0 route w=1
`

// sortDests orders real servers as ipvsadm sorts them, so that the
// kernel's order (newest first) compares with ipvsadm's.
func sortDests(t *Table) {
	for i := range t.Services {
		d := t.Services[i].Dests
		for a := range d {
			for b := a + 1; b < len(d); b++ {
				if d[b].Addr < d[a].Addr {
					d[a], d[b] = d[b], d[a]
				}
			}
		}
	}
}

// The three text sources describe the same table.
func TestSourcesAgree(t *testing.T) {
	proc, err := ParseProcIPVS(open(t, "proc_ip_vs.txt"))
	if err != nil {
		t.Fatal(err)
	}
	proc.SetHZ(250)
	if got := identity(proc); got != wantIdentity {
		t.Errorf("/proc/net/ip_vs:\n%s\nwant\n%s", got, wantIdentity)
	}
	list, err := ParseIpvsadmList(open(t, "ipvsadm_Ln.txt"))
	if err != nil {
		t.Fatal(err)
	}
	save, err := ParseIpvsadmSave(open(t, "ipvsadm_Sn.txt"))
	if err != nil {
		t.Fatal(err)
	}
	sortDests(proc)
	sortDests(list)
	sortDests(save)
	if identity(list) != identity(proc) {
		t.Errorf("ipvsadm -Ln:\n%s\nwant\n%s", identity(list), identity(proc))
	}
	if identity(save) != identity(proc) {
		t.Errorf("ipvsadm -Sn:\n%s\nwant\n%s", identity(save), identity(proc))
	}
	for _, tb := range []*Table{proc, list} {
		if tb.Version != "1.2.1" || tb.ConnTableSize != 4096 {
			t.Errorf("version %q size %d", tb.Version, tb.ConnTableSize)
		}
	}
}

func TestProcIPVSDetails(t *testing.T) {
	tb, err := ParseProcIPVS(open(t, "proc_ip_vs.txt"))
	if err != nil {
		t.Fatal(err)
	}
	u := tb.Find("udp", "203.0.113.100:53", 0)
	if u == nil || u.TimeoutJiffies != 90000 || u.Timeout != 0 || !reflect.DeepEqual(u.Flags, []string{"ops"}) {
		t.Errorf("udp %+v", u)
	}
	tb.SetHZ(1000)
	if u.Timeout != 90 {
		t.Errorf("HZ 1000: timeout %d", u.Timeout)
	}
	d := tb.Find("tcp", "203.0.113.100:443", 0).Dest("198.18.0.2:443")
	if d == nil || d.ActiveC != 3 || d.InactiveC != 12 || d.PersistC != -1 {
		t.Errorf("dest %+v", d)
	}
	o := tb.Obs()
	if len(o.Services) != 6 || o.Services[0].Dests[1].ActiveC != 1 || o.Services[5].Proto != "fwmark" || o.Services[5].Mark != 1 {
		t.Errorf("obs %+v", o)
	}
	empty, err := ParseProcIPVS(open(t, "proc_ip_vs_empty.txt"))
	if err != nil || len(empty.Services) != 0 || empty.ConnTableSize != 4096 {
		t.Errorf("empty: %+v %v", empty, err)
	}
	nomask, err := ParseProcIPVS(strings.NewReader("UDP  CB007164:0035 sh persistent 360\n"))
	if err != nil || len(nomask.Services) != 1 || !nomask.Services[0].Persistent || nomask.Services[0].TimeoutJiffies != 360 {
		t.Errorf("persistent without netmask: %+v %v", nomask, err)
	}
	local, err := ParseProcIPVS(strings.NewReader("FWM  00000002 rr \n  -> 7F000001:0000      Local   1      0          0         \n"))
	if err != nil || local.Services[0].Dests[0].Forward != "local" || local.Services[0].Mark != 2 {
		t.Errorf("local: %+v %v", local, err)
	}
}

func TestListVariants(t *testing.T) {
	st, err := ParseIpvsadmList(open(t, "ipvsadm_Ln_stats.txt"))
	if err != nil {
		t.Fatal(err)
	}
	s := st.Services[0]
	if s.Scheduler != "" || s.Stats == nil || s.Stats.Conns != 12 || s.Stats.OutBytes != 2500e6 ||
		s.Dests[1].Stats.InPkts != 60 || s.Dests[1].Weight != -1 || s.Dests[1].Forward != "" {
		t.Errorf("stats %+v %+v", s, s.Stats)
	}
	if st.Services[1].Proto != "fwmark" || st.Services[1].Mark != 1 {
		t.Errorf("stats fwmark %+v", st.Services[1])
	}
	rt, err := ParseIpvsadmList(open(t, "ipvsadm_Ln_rate.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if r := rt.Services[0]; r.Stats.CPS != 2 || r.Stats.OutBPS != 24000 || r.Dests[0].Stats.InPPS != 10 {
		t.Errorf("rate %+v", r.Stats)
	}
	th, err := ParseIpvsadmList(open(t, "ipvsadm_Ln_thresholds.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if d := th.Services[0].Dests[0]; th.Services[0].Scheduler != "rr" || d.UThreshold != 200 || d.LThreshold != 150 || d.ActiveC != 1 || d.Weight != -1 {
		t.Errorf("thresholds %+v", d)
	}
	pc, err := ParseIpvsadmList(open(t, "ipvsadm_Ln_persistent_conn.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if d := pc.Services[0].Dests[0]; d.Weight != 1 || d.PersistC != 4 || d.ActiveC != 3 || d.InactiveC != 12 || !pc.Services[0].Persistent {
		t.Errorf("persistent-conn %+v", d)
	}
	ln, err := ParseIpvsadmList(open(t, "ipvsadm_Ln.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if u := ln.Find("udp", "203.0.113.100:53", 0); !reflect.DeepEqual(u.Flags, []string{"ops"}) || u.Netmask != "255.255.255.0" {
		t.Errorf("udp %+v", u)
	}
	fl, err := ParseIpvsadmList(strings.NewReader("TCP  10.0.0.1:80 sh (sh-fallback,sh-port) persistent 60 pe sip\n"))
	if err != nil || !reflect.DeepEqual(fl.Services[0].Flags, []string{"sh-fallback", "sh-port"}) || fl.Services[0].PE != "sip" {
		t.Errorf("flags %+v %v", fl, err)
	}
}

func TestSaveDetails(t *testing.T) {
	tb, err := ParseIpvsadmSave(open(t, "ipvsadm_Sn.txt"))
	if err != nil {
		t.Fatal(err)
	}
	u := tb.Find("udp", "203.0.113.100:53", 0)
	if !reflect.DeepEqual(u.Flags, []string{"sh-fallback", "sh-port"}) {
		t.Errorf("udp flags %v", u.Flags)
	}
	if d := tb.Find("tcp", "[2001:db8::64]:80", 0).Dests[0]; d.Tunnel != "gue" || d.ActiveC != -1 {
		t.Errorf("tunnel %+v", d)
	}
	// restore semantics: -E, -e, -d, -D, -C; defaults wlc, -g, -p 300
	in := `-A -t 10.0.0.1:80
-a -t 10.0.0.1:80 -r 10.0.1.1:80
-a -t 10.0.0.1:80 -r 10.0.1.2 -m -x 100 -y 50
-E -t 10.0.0.1:80 -s rr -p
-e -t 10.0.0.1:80 -r 10.0.1.1:80 -w 5
-d -t 10.0.0.1:80 -r 10.0.1.1:80
-A --tcp-service 10.0.0.2:80 --scheduler sed
-D -t 10.0.0.2:80
`
	tb, err = ParseIpvsadmSave(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Services) != 1 {
		t.Fatalf("%+v", tb)
	}
	s := tb.Services[0]
	if s.Scheduler != "rr" || !s.Persistent || s.Timeout != DefaultPersistence || len(s.Dests) != 1 ||
		s.Dests[0].Addr != "10.0.1.2:80" || s.Dests[0].Forward != "masq" || s.Dests[0].UThreshold != 100 || s.Dests[0].LThreshold != 50 {
		t.Errorf("%+v", s)
	}
	tb, err = ParseIpvsadmSave(strings.NewReader("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1:80\n-C\n"))
	if err != nil || len(tb.Services) != 0 {
		t.Errorf("clear: %+v %v", tb, err)
	}
	def, _ := ParseIpvsadmSave(strings.NewReader("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.1.1:8080\n"))
	// direct routing (the default) cannot change the port: ipvsadm sets the service's
	if d := def.Services[0].Dests[0]; def.Services[0].Scheduler != "wlc" || d.Forward != "route" || d.Weight != 1 || d.Addr != "10.0.1.1:80" {
		t.Errorf("defaults %+v", def.Services[0])
	}
}

func TestProcConn(t *testing.T) {
	cs, err := ParseProcConn(open(t, "proc_ip_vs_conn.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 8 {
		t.Fatalf("%d conns", len(cs))
	}
	want := Conn{Proto: "tcp", Client: "203.0.113.10:41000", Virtual: "203.0.113.100:80", Dest: "198.18.0.2:80",
		State: "ESTABLISHED", Expires: 898 * time.Second}
	if cs[0] != want {
		t.Errorf("got %+v\nwant %+v", cs[0], want)
	}
	if c := cs[5]; c.Proto != "ip" || c.Virtual != "0.0.0.1:0" || c.State != "NONE" {
		t.Errorf("fwmark template %+v", c)
	}
	if c := cs[6]; c.PEName != "sip" || c.PEData != "4d1c2b3a@203.0.113.10" {
		t.Errorf("pe %+v", c)
	}
	if c := cs[7]; c.Client != "[2001:db8::a]:41000" || c.Dest != "[2001:db8::2]:80" {
		t.Errorf("v6 %+v", c)
	}
	old, err := ParseProcConn(open(t, "proc_ip_vs_conn_old.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if c := old[0]; c.Local != "203.0.113.100:80" || c.Dest != "198.18.0.2:80" || c.Expires != 898*time.Second {
		t.Errorf("old %+v", c)
	}
	// an old kernel's lines without the header
	lines := strings.SplitN(readFile(t, "proc_ip_vs_conn_old.txt"), "\n", 2)[1]
	old2, err := ParseProcConn(strings.NewReader(lines))
	if err != nil || !reflect.DeepEqual(old2, old) {
		t.Errorf("headerless old: %+v %v", old2, err)
	}
}

func TestVersionLine(t *testing.T) {
	for _, c := range []struct {
		in      string
		version string
		size    int
		bad     bool
	}{
		{"IP Virtual Server version 1.2.1 (size=4096)", "1.2.1", 4096, false},
		{"IP Virtual Server version 1.2.1 (size=1048576)\n", "1.2.1", 1048576, false},
		{"IP Virtual Server version 1.2.1", "1.2.1", 0, false},
		{"IP Virtual Server version 1.2 (size=4096)", "", 0, true},
		{"IP Virtual Server version 1.2.1 (size=x)", "", 0, true},
		{"IP Virtual Server version 1.2.1 size=4096", "", 0, true},
		{"Prot LocalAddress:Port", "", 0, true},
	} {
		v, s, err := ParseVersionLine(c.in)
		if (err != nil) != c.bad || v != c.version || s != c.size {
			t.Errorf("%q: %q %d %v", c.in, v, s, err)
		}
	}
}

// Malformed input gives an error that names the source and the line.
func TestErrorsNameTheLine(t *testing.T) {
	type parser func(string) error
	proc := func(s string) error { _, err := ParseProcIPVS(strings.NewReader(s)); return err }
	conn := func(s string) error { _, err := ParseProcConn(strings.NewReader(s)); return err }
	list := func(s string) error { _, err := ParseIpvsadmList(strings.NewReader(s)); return err }
	save := func(s string) error { _, err := ParseIpvsadmSave(strings.NewReader(s)); return err }
	for _, c := range []struct {
		name string
		p    parser
		in   string
		want string
	}{
		{"proc dest first", proc, "  -> C6120002:0050 Masq 1 0 0\n", "/proc/net/ip_vs line 1: real server line before any service"},
		{"proc bad hex", proc, "TCP  CB0071ZZ:0050 rr\n", "line 1: address \"CB0071ZZ\" is not hex"},
		{"proc bad fwd", proc, "TCP  CB007164:0050 rr\n  -> C6120002:0050 Bogus 1 0 0\n", "line 2: forwarding method \"Bogus\""},
		{"proc persist", proc, "TCP  CB007164:0050 rr persistent x FFFFFFFF\n", "line 1: persistence timeout \"x\""},
		{"proc junk", proc, "hello\n", "line 1: not a service"},
		{"conn fields", conn, "Pro FromIP\nTCP CB00710A A028\n", "/proc/net/ip_vs_conn line 2: want Pro FromIP"},
		{"conn expires", conn, "TCP CB00710A A028 CB007164 0050 C6120002 0050 ESTABLISHED soon\n", "line 1: expires \"soon\""},
		{"list names", list, "TCP  www.example.com:http rr\n", "ipvsadm -Ln line 1: address \"www.example.com:http\" is a name, not a number: run ipvsadm with -n"},
		{"list service port name", list, "TCP  10.0.0.1:http rr\n", "port of \"10.0.0.1:http\" is a name"},
		{"list dest cols", list, "TCP  10.0.0.1:80 rr\n  -> 10.0.1.1:80 Masq 1\n", "line 2: want ADDR:PORT Forward Weight"},
		{"list no sched", list, "TCP  10.0.0.1:80\n", "line 1: no scheduler"},
		{"list unknown word", list, "TCP  10.0.0.1:80 rr bananas\n", "line 1: unknown word \"bananas\""},
		{"list stats", list, "Prot LocalAddress:Port Conns InPkts OutPkts InBytes OutBytes\nTCP  10.0.0.1:80 1 2 3\n", "line 2: want 5 numbers"},
		{"save no cmd", save, "-t 10.0.0.1:80 -s rr\n", "ipvsadm -Sn line 1: no command"},
		{"save order", save, "-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m\n", "line 1: real server for service tcp 10.0.0.1:80 that was not added"},
		{"save twice", save, "-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80\n", "line 2: service tcp 10.0.0.1:80 is added twice"},
		{"save unknown", save, "-A -t 10.0.0.1:80 --frobnicate\n", "line 1: unknown option \"--frobnicate\""},
		{"save no value", save, "-A -t 10.0.0.1:80 -s\n", "line 1: -s needs a value"},
		{"save weight", save, "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -w 70000\n", "line 2: 70000 out of range 0..65535"},
		{"save names", save, "-A -t lb:http -s rr\n", "address \"lb:http\" is a name"},
		{"save fwmark", save, "-A -f 0\n", "fwmark \"0\": want a number > 0"},
	} {
		err := c.p(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want ...%s...", c.name, err, c.want)
		}
		var pe *ParseError
		if err != nil && !errors.As(err, &pe) {
			t.Errorf("%s: %T is not a *ParseError", c.name, err)
		}
	}
}

func TestLongLine(t *testing.T) {
	in := "TCP  CB007164:0050 rr " + strings.Repeat("x", maxLine+10) + "\n"
	_, err := ParseProcIPVS(strings.NewReader(in))
	if err == nil || !strings.Contains(err.Error(), "line 1: line longer than") {
		t.Errorf("%v", err)
	}
}

// fakeClient answers as the kernel would for the lab's table.
type fakeClient struct {
	cfipvs.Client
	svcs  []cfipvs.ServiceExtended
	dests map[uint32][]cfipvs.DestinationExtended // by port, fwmark
	err   error
}

func (f *fakeClient) Info() (cfipvs.Info, error) {
	return cfipvs.Info{Version: [3]int{1, 2, 1}, ConnectionTableSize: 4096}, f.err
}
func (f *fakeClient) Config() (cfipvs.Config, error) {
	return cfipvs.Config{TCPTimeout: 900, TCPFinTimeout: 120, UDPTimeout: 300}, f.err
}
func (f *fakeClient) Services() ([]cfipvs.ServiceExtended, error) { return f.svcs, f.err }
func (f *fakeClient) Destinations(s cfipvs.Service) ([]cfipvs.DestinationExtended, error) {
	return f.dests[uint32(s.Port)+s.FWMark<<16], nil
}

func TestReadClient(t *testing.T) {
	vip := netip.MustParseAddr("203.0.113.100")
	rs1, rs2 := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	f := &fakeClient{
		svcs: []cfipvs.ServiceExtended{
			{Service: cfipvs.Service{Address: vip, Port: 80, Protocol: cfipvs.TCP, Family: cfipvs.INET, Scheduler: "rr",
				Netmask: netmask.MaskFrom(32, 32)}, Stats64: cfipvs.Stats{Connections: 7}},
			{Service: cfipvs.Service{Address: vip, Port: 53, Protocol: cfipvs.UDP, Family: cfipvs.INET, Scheduler: "sh",
				Flags:   cfipvs.ServicePersistent | cfipvs.ServiceOnePacket | cfipvs.ServiceSchedulerOpt1 | cfipvs.ServiceSchedulerOpt2,
				Timeout: 360, Netmask: netmask.MaskFrom(24, 32)}},
			{Service: cfipvs.Service{FWMark: 1, Family: cfipvs.INET, Scheduler: "wlc", Flags: cfipvs.ServicePersistent | cfipvs.ServiceHashed,
				Timeout: 300, Netmask: netmask.MaskFrom(32, 32)}},
		},
		dests: map[uint32][]cfipvs.DestinationExtended{
			80: {
				{Destination: cfipvs.Destination{Address: rs1, Port: 80, FwdMethod: cfipvs.Masquerade, Weight: 2, UpperThreshold: 10},
					ActiveConnections: 1, InactiveConnections: 3, PersistentConnections: 0},
				{Destination: cfipvs.Destination{Address: rs2, Port: 80, FwdMethod: cfipvs.Masquerade, Weight: 0}},
			},
			53:      {{Destination: cfipvs.Destination{Address: rs1, Port: 53, FwdMethod: cfipvs.Tunnel, TunnelType: cfipvs.GUE, Weight: 1}}},
			1 << 16: {{Destination: cfipvs.Destination{Address: rs2, FwdMethod: cfipvs.DirectRoute, Weight: 1}}},
		},
	}
	tb, err := ReadClient(f)
	if err != nil {
		t.Fatal(err)
	}
	got := identity(tb)
	want := `tcp 203.0.113.100:80 v6=false sched=rr persistent=false timeout=0 mask=
  198.18.0.2:80 masq w=2
  198.18.0.3:80 masq w=0
udp 203.0.113.100:53 v6=false sched=sh persistent=true timeout=360 mask=255.255.255.0
  198.18.0.2:53 tunnel w=1
fwmark 1 v6=false sched=wlc persistent=true timeout=300 mask=255.255.255.255
  198.18.0.3:0 route w=1
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if u := tb.Services[1]; !reflect.DeepEqual(u.Flags, []string{"ops", "sh-fallback", "sh-port"}) || u.Dests[0].Tunnel != "gue" {
		t.Errorf("udp %+v", u)
	}
	if tb.Services[0].Stats.Conns != 7 || tb.Services[0].Dests[0].UThreshold != 10 || tb.Services[0].Dests[0].InactiveC != 3 {
		t.Errorf("tcp %+v", tb.Services[0])
	}
	if to := tb.Timeouts; to == nil || *to != (obs.IPVSTimeouts{TCP: 900, TCPFin: 120, UDP: 300}) {
		t.Errorf("timeouts %+v", to)
	}
	if tb.Version != "1.2.1" || tb.ConnTableSize != 4096 {
		t.Errorf("info %q %d", tb.Version, tb.ConnTableSize)
	}
	_, err = ReadClient(&fakeClient{err: os.ErrNotExist})
	if !errors.Is(err, ErrNoIPVS) {
		t.Errorf("no ipvs: %v", err)
	}
}

// On a kernel without IPVS (as this test machine's) the netlink reader
// says so clearly; with IPVS it reads a table.
func TestReadNetlinkHere(t *testing.T) {
	tb, err := ReadNetlink()
	if err != nil {
		if !errors.Is(err, ErrNoIPVS) && !errors.Is(err, os.ErrPermission) {
			t.Fatalf("unexpected error: %v", err)
		}
		if errors.Is(err, ErrNoIPVS) && !strings.Contains(err.Error(), "modprobe ip_vs") {
			t.Errorf("error does not say what to do: %v", err)
		}
		t.Logf("%v", err)
		return
	}
	if tb == nil {
		t.Fatal("nil table")
	}
}

// An IPv6 persistence prefix reads byte-swapped on a little-endian kernel
// (recorded in the VM: 40000000 for /64) and plainly on a big-endian one;
// a value that is a length in neither order is an error.
func TestProcIPv6PersistencePrefix(t *testing.T) {
	for hex, want := range map[string]string{"40000000": "/64", "00000040": "/64", "80000000": "/128", "00000030": "/48", "00000000": "", "12345678": ""} {
		in := "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n" +
			"TCP  [2001:0db8:0000:0000:0000:0000:0000:0100]:0050 rr persistent 15000 " + hex + "\n"
		tb, err := ParseProcIPVS(strings.NewReader(in))
		if want == "" {
			if err == nil {
				t.Errorf("%s: no error, parsed %q", hex, tb.Services[0].Netmask)
			}
			continue
		}
		if err != nil || tb.Services[0].Netmask != want {
			t.Errorf("%s: %v %+v, want %s", hex, err, tb, want)
		}
	}
}
