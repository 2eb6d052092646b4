package facts

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestReadModules(t *testing.T) {
	dir := t.TempDir()
	rel := "6.1.0-27-cloud-amd64"
	write := func(name, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "proc_modules"), "ip_vs_rr 12288 1 - Live 0x0\nip_vs 217088 3 ip_vs_rr, Live 0x0\nnf_conntrack 188416 2 ip_vs,nf_nat, Live 0x0\n")
	write(filepath.Join(dir, "lib", rel, "modules.dep"),
		"kernel/net/netfilter/ipvs/ip_vs.ko.xz: kernel/net/netfilter/nf_conntrack.ko.xz\n"+
			"kernel/net/netfilter/ipvs/ip_vs_wlc.ko.xz: kernel/net/netfilter/ipvs/ip_vs.ko.xz\n"+
			"kernel/net/netfilter/ipvs/ip_vs_ftp.ko.xz: kernel/net/netfilter/ipvs/ip_vs.ko.xz kernel/net/netfilter/nf_nat.ko.xz\n"+
			"kernel/net/netfilter/nf_conntrack_ftp.ko.xz: kernel/net/netfilter/nf_conntrack.ko.xz\n"+
			"kernel/drivers/net/veth.ko.xz:\n")
	procModules, modulesDir = filepath.Join(dir, "proc_modules"), filepath.Join(dir, "lib")
	t.Cleanup(func() { procModules, modulesDir = "/proc/modules", "/lib/modules" })

	m, err := readModules(rel)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ip_vs", "ip_vs_rr"}; !reflect.DeepEqual(m.Loaded, want) {
		t.Errorf("loaded %v, want %v", m.Loaded, want)
	}
	if want := []string{"ip_vs", "ip_vs_ftp", "ip_vs_wlc", "nf_conntrack_ftp"}; !reflect.DeepEqual(m.Loadable, want) {
		t.Errorf("loadable %v, want %v", m.Loadable, want)
	}
	if m.Builtin != nil {
		t.Errorf("builtin %v: the file is missing, so it must stay unknown (nil)", m.Builtin)
	}
	for name, want := range map[string]bool{"ip_vs_wlc": true, "ip_vs_rr": true, "ip_vs_mh": false} {
		if has, known := m.Has(name); has != want || !known {
			t.Errorf("Has(%s) = %v, %v; want %v, true", name, has, known, want)
		}
	}
}
