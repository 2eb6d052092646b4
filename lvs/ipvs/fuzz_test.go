package ipvs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seeds adds every testdata file whose name starts with prefix.
func seeds(f *testing.F, prefix string) {
	files, _ := filepath.Glob(filepath.Join("testdata", prefix+"*"))
	if len(files) == 0 {
		f.Fatalf("no testdata/%s* seeds", prefix)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
}

// checkErr holds a parser to its promise: an error names the line.
func checkErr(t *testing.T, err error) {
	if err == nil {
		return
	}
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %q (%T) does not name a line", err, err)
	}
	if pe.Line < 1 || !strings.Contains(err.Error(), "line ") {
		t.Fatalf("error %q has no line number", err)
	}
}

// checkTable: what a parser returns without error is usable.
func checkTable(t *testing.T, tb *Table, err error) {
	checkErr(t, err)
	if tb == nil {
		t.Fatal("nil table")
	}
	if err != nil {
		return
	}
	for _, s := range tb.Services {
		if s.Proto == "" || (s.Proto != "fwmark" && s.Addr == "") || s.Dests == nil {
			t.Fatalf("incomplete service %+v", s)
		}
		for _, d := range s.Dests {
			if d.Addr == "" {
				t.Fatalf("real server without address in %s", s)
			}
		}
	}
	_ = tb.Obs()
}

func FuzzProcIPVS(f *testing.F) {
	seeds(f, "proc_ip_vs.txt")
	seeds(f, "proc_ip_vs_empty")
	f.Fuzz(func(t *testing.T, s string) {
		tb, err := ParseProcIPVS(strings.NewReader(s))
		checkTable(t, tb, err)
	})
}

func FuzzProcIPVSConn(f *testing.F) {
	seeds(f, "proc_ip_vs_conn")
	f.Fuzz(func(t *testing.T, s string) {
		cs, err := ParseProcConn(strings.NewReader(s))
		checkErr(t, err)
		if err == nil {
			for _, c := range cs {
				if c.Client == "" || c.Virtual == "" || c.Dest == "" || c.State == "" {
					t.Fatalf("incomplete %+v", c)
				}
			}
		}
	})
}

func FuzzIpvsadmLn(f *testing.F) {
	seeds(f, "ipvsadm_Ln")
	f.Fuzz(func(t *testing.T, s string) {
		tb, err := ParseIpvsadmList(strings.NewReader(s))
		checkTable(t, tb, err)
	})
}

func FuzzIpvsadmSn(f *testing.F) {
	seeds(f, "ipvsadm_Sn")
	f.Fuzz(func(t *testing.T, s string) {
		tb, err := ParseIpvsadmSave(strings.NewReader(s))
		checkTable(t, tb, err)
	})
}
