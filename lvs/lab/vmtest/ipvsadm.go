package vmtest

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// IpvsadmPackages are Debian's ipvsadm and the libraries it links besides
// glibc (its Depends).
var IpvsadmPackages = []string{"ipvsadm", "libnl-3-200", "libnl-genl-3-200", "libpopt0"}

// libDir is where Debian's dynamic loader looks without an ld.so.cache.
const libDir = "lib/x86_64-linux-gnu"

// IpvsadmFiles gives the guest Debian's own ipvsadm, as an operator runs
// it: the dynamically linked binary, its program interpreter and the
// closure of the shared libraries it needs, read from the ELF headers.
// The packages are extracted into CacheDir/ipvsadm/root (downloaded with
// Install). glibc and the loader are the host's: apt-get downloads the
// packages of the host's own Debian release, which are built against
// that glibc, so the pair matches without a second copy of libc6.
func IpvsadmFiles(ctx context.Context, c *Config) ([]File, error) {
	dir := filepath.Join(c.CacheDir, "ipvsadm")
	root := filepath.Join(dir, "root")
	bin := filepath.Join(root, "sbin/ipvsadm")
	if _, err := os.Stat(bin); err != nil {
		if !c.Install {
			return nil, fmt.Errorf("no ipvsadm in %s: apt-get download %s there and dpkg-deb -x each into root/ (or run with Install)",
				dir, strings.Join(IpvsadmPackages, " "))
		}
		if err := os.MkdirAll(root, 0o755); err != nil {
			return nil, err
		}
		c.logf("apt-get download %s", strings.Join(IpvsadmPackages, " "))
		if err := run(ctx, c.Log, dir, "apt-get", append([]string{"download"}, IpvsadmPackages...)...); err != nil {
			return nil, err
		}
		for _, p := range IpvsadmPackages {
			debs, _ := filepath.Glob(filepath.Join(dir, p+"_*.deb"))
			if len(debs) == 0 {
				return nil, fmt.Errorf("apt-get download %s: no .deb in %s", p, dir)
			}
			if err := run(ctx, c.Log, dir, "dpkg-deb", "-x", debs[len(debs)-1], root); err != nil {
				return nil, err
			}
		}
	}
	search := []string{filepath.Join(root, libDir), filepath.Join(root, "usr", libDir), "/" + libDir, "/usr/" + libDir}
	interp, libs, err := elfClosure(bin, search)
	if err != nil {
		return nil, err
	}
	var out []File
	add := func(name, src string) error {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		out = append(out, File{Name: name, Mode: 0o755, Data: b})
		return nil
	}
	if err := add("usr/sbin/ipvsadm", bin); err != nil {
		return nil, err
	}
	if err := add(strings.TrimPrefix(interp, "/"), interp); err != nil {
		return nil, err
	}
	for _, l := range libs {
		if err := add(filepath.Join(libDir, filepath.Base(l)), l); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// elfClosure returns bin's program interpreter and the files of the
// shared libraries it needs, transitively, each found in the first of
// dirs that has it (the interpreter itself is not repeated).
func elfClosure(bin string, dirs []string) (string, []string, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	interp := ""
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return "", nil, fmt.Errorf("%s: program interpreter: %w", bin, err)
			}
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	if interp == "" {
		return "", nil, fmt.Errorf("%s is not dynamically linked", bin)
	}
	seen := map[string]bool{filepath.Base(interp): true}
	var libs []string
	var visit func(path string) error
	visit = func(path string) error {
		ef, err := elf.Open(path)
		if err != nil {
			return err
		}
		needed, err := ef.ImportedLibraries()
		ef.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for _, n := range needed {
			if seen[n] {
				continue
			}
			seen[n] = true
			found := ""
			for _, d := range dirs {
				if _, err := os.Stat(filepath.Join(d, n)); err == nil {
					found = filepath.Join(d, n)
					break
				}
			}
			if found == "" {
				return fmt.Errorf("%s needs %s, found in none of %s", path, n, strings.Join(dirs, ", "))
			}
			libs = append(libs, found)
			if err := visit(found); err != nil {
				return err
			}
		}
		return nil
	}
	if err := visit(bin); err != nil {
		return "", nil, err
	}
	if _, err := os.Stat(interp); errors.Is(err, os.ErrNotExist) {
		return "", nil, fmt.Errorf("%s: program interpreter %s is not on this host", bin, interp)
	}
	return interp, libs, nil
}
