package facts

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestParseCounters(t *testing.T) {
	in := "TcpExt: SyncookiesSent IPReversePathFilter\nTcpExt: 0 7\nIpExt: InNoRoutes\nIpExt: 3\n" +
		"Ip: Forwarding DefaultTTL ForwDatagrams\nIp: 1 64 12\nTcp: RtoAlgorithm MaxConn\nTcp: 1 -1\n"
	m := map[string]int64{}
	if err := ParseCounters(in, m); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"TcpExt.IPReversePathFilter": 7, "IpExt.InNoRoutes": 3, "Ip.ForwDatagrams": 12, "Tcp.MaxConn": -1}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %d, want %d", k, m[k], v)
		}
	}
	if err := ParseCounters("Ip: A B\nIp: 1\n", m); err == nil {
		t.Error("mismatched line accepted")
	}
}

func TestParseListeners(t *testing.T) {
	in := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0
   1: 010012C6:9C40 020012C6:1F90 01 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 100 0 0 10 0
`
	l, err := ParseListeners(strings.NewReader(in), "tcp", "0A")
	if err != nil || len(l) != 1 || l[0].Addr != "127.0.0.1:80" || l[0].Inode != 12345 {
		t.Fatalf("%+v %v", l, err)
	}
}

func TestParseIPVS(t *testing.T) {
	in := `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  CB007164:0050 rr
  -> C6120003:0050      Masq    1      0          2
  -> C6120002:0050      Masq    2      1          0
UDP  CB007164:0035 sh persistent 360
FWM  00000001 wlc
  -> C6120002:0000      Route   1      0          0
`
	tb, err := ParseIPVS(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Services) != 3 {
		t.Fatalf("%+v", tb)
	}
	s := tb.Services[0]
	if s.Proto != "tcp" || s.Addr != "203.0.113.100:80" || s.Scheduler != "rr" || len(s.Dests) != 2 ||
		s.Dests[1].Addr != "198.18.0.2:80" || s.Dests[1].Forward != "masq" || s.Dests[1].Weight != 2 || s.Dests[1].ActiveC != 1 || s.Dests[0].InactiveC != 2 {
		t.Errorf("tcp %+v", s)
	}
	if u := tb.Services[1]; u.Proto != "udp" || !u.Persistent || u.Addr != "203.0.113.100:53" {
		t.Errorf("udp %+v", u)
	}
	if f := tb.Services[2]; f.Proto != "fwmark" || f.Mark != 1 || f.Dests[0].Forward != "route" {
		t.Errorf("fwm %+v", f)
	}
}

func FuzzParseIPVS(f *testing.F) {
	f.Add("TCP  CB007164:0050 rr\n  -> C6120003:0050      Masq    1      0          2\n")
	f.Fuzz(func(t *testing.T, s string) { _, _ = ParseIPVS(strings.NewReader(s)) })
}

// FuzzParseCounters holds ParseCounters to what a plain reading gives
// (lines as bufio splits them, fields as strings.Fields does): the same
// counters, and an error for the same texts.
func FuzzParseCounters(f *testing.F) {
	f.Add("Ip: A B\nIp: 1 2\n")
	f.Add("TcpExt: A\tB\r\nTcpExt: 18446744073709551615 -3\nIp: A\u00a0B\nIp: 1\u00a02\n")
	f.Add("Ip: A B\nIcmp: X\nIcmp: 1\nIp:\nIp:\n: x\n:\n")
	if b, err := os.ReadFile("/proc/net/netstat"); err == nil {
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, want := map[string]int64{}, map[string]int64{}
		err := ParseCounters(s, got)
		werr := parseCountersPlain(s, want)
		if (err == nil) != (werr == nil) {
			t.Fatalf("error %v, a plain reading: %v", err, werr)
		}
		if err == nil && fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("got %v, a plain reading gives %v", got, want)
		}
	})
}

// parseCountersPlain is ParseCounters as first written, with bufio and
// strings.Fields: the reference for the fuzz test.
func parseCountersPlain(text string, into map[string]int64) error {
	var head []string
	var prefix string
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		line = strings.TrimSuffix(line, "\r")
		p, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if head == nil || p != prefix {
			head, prefix = fields, p
			continue
		}
		if len(fields) != len(head) {
			return fmt.Errorf("%s: %d names but %d values", p, len(head), len(fields))
		}
		for i, f := range fields {
			v, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				if u, uerr := strconv.ParseUint(f, 10, 64); uerr == nil {
					v = int64(u >> 1)
				} else {
					continue
				}
			}
			into[p+"."+head[i]] = v
		}
		head, prefix = nil, ""
	}
	return nil
}

func BenchmarkParseCounters(b *testing.B) {
	raw, err := readCountersRaw()
	if err != nil {
		b.Skip(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseCounters(raw, make(map[string]int64, countersHint)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseCountersPlain(b *testing.B) {
	raw, err := readCountersRaw()
	if err != nil {
		b.Skip(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := parseCountersPlain(raw, map[string]int64{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestNeighState(t *testing.T) {
	if NeighState(0x02) != "REACHABLE" || NeighState(0x80) != "PERMANENT" || NeighState(0) != "NONE" {
		t.Fatal(NeighState(2))
	}
}

// readProc returns what os.ReadFile does, across its first buffer's size,
// and an error os.ErrNotExist recognises.
func TestReadProc(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 3, 511, 512, 513, 5000} {
		p := filepath.Join(dir, fmt.Sprint(n))
		want := bytes.Repeat([]byte("x"), n)
		if err := os.WriteFile(p, want, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := readProc(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%d bytes: got %d, %v", n, len(got), err)
		}
	}
	if _, err := readProc(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestReadSysctlsRelative: the sysctls read relative to their directory are
// the values and names their full paths give (this namespace, read only).
func TestReadSysctlsRelative(t *testing.T) {
	got, err := readSysctls()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 2+2*len(ConfKeys) {
		t.Fatalf("only %d sysctls: %v", len(got), got)
	}
	for k, v := range got {
		b, err := readProc(filepath.Join(procSys, strings.ReplaceAll(k, ".", "/")))
		if err != nil {
			t.Errorf("%s: %v", k, err)
			continue
		}
		if want := strings.TrimSpace(string(b)); v != want {
			t.Errorf("%s = %q, by its path %q", k, v, want)
		}
	}
	for _, k := range []string{"net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter", "net.ipv4.conf.lo.arp_ignore"} {
		if _, ok := got[k]; !ok {
			t.Errorf("%s missing", k)
		}
	}
}
