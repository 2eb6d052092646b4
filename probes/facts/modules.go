package facts

import (
	"bufio"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// Where the module lists are; tests point them elsewhere.
var (
	procModules = "/proc/modules"
	modulesDir  = "/lib/modules"
)

// wantedModule keeps the modules that matter to a director: IPVS and its
// schedulers and helpers, and the conntrack FTP helpers of an nftables
// datapath. The lists are long (thousands of lines); the facts are not.
func wantedModule(name string) bool {
	return strings.HasPrefix(name, "ip_vs") || name == "nf_conntrack_ftp" || name == "nf_nat_ftp"
}

// readModules answers "loaded or loadable" as kubeadm's preflight does:
// /proc/modules, then the kernel's modules.builtin and modules.dep. A
// missing list stays nil, so "not there" and "not known" stay apart.
func readModules(release string) (*obs.Modules, error) {
	m := &obs.Modules{}
	var firstErr error
	keep := func(err error) {
		if firstErr == nil && err != nil && !os.IsNotExist(err) {
			firstErr = err
		}
	}
	var err error
	m.Loaded, err = moduleList(procModules, func(line string) string {
		name, _, _ := strings.Cut(line, " ")
		return name
	})
	keep(err)
	dir := filepath.Join(modulesDir, release)
	// Lines are paths: "kernel/net/netfilter/ipvs/ip_vs.ko" (modules.builtin),
	// "kernel/net/netfilter/ipvs/ip_vs_rr.ko.xz: kernel/.../ip_vs.ko.xz"
	// (modules.dep). Module names use "_" where file names may use "-".
	byPath := func(line string) string {
		p, _, _ := strings.Cut(line, ":")
		name := path.Base(p)
		if i := strings.Index(name, ".ko"); i >= 0 {
			name = name[:i]
		}
		return strings.ReplaceAll(name, "-", "_")
	}
	m.Builtin, err = moduleList(filepath.Join(dir, "modules.builtin"), byPath)
	keep(err)
	m.Loadable, err = moduleList(filepath.Join(dir, "modules.dep"), byPath)
	keep(err)
	return m, firstErr
}

func moduleList(file string, name func(string) string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return scanModules(f, name)
}

func scanModules(r io.Reader, name func(string) string) ([]string, error) {
	out := []string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if n := name(sc.Text()); wantedModule(n) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, sc.Err()
}
