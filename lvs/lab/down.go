package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vishvananda/netns"
)

// Down removes lab name: it kills the lab's service processes (the recorded
// PIDs and any process whose network namespace is one of the lab's, such as
// agents left after a crash), deletes the namespaces and the state
// directory. It is idempotent; it goes on after errors and returns them
// joined.
func Down(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	var errs []error
	inodes := map[uint64]bool{}
	nsNames := map[string]bool{}
	st, err := Load(name)
	if err == nil {
		for _, ino := range st.Inodes {
			inodes[ino] = true
		}
		for _, h := range st.Hosts {
			nsNames[h.Namespace] = true
		}
		for _, n := range sshNamespaces(st) {
			nsNames[n] = true
		}
	} else if !errors.Is(err, ErrNoLab) {
		errs = append(errs, err)
	}
	for _, n := range labNamespaces(name) {
		nsNames[n] = true
	}
	for n := range nsNames {
		if ino, ok := nsInode(n); ok {
			inodes[ino] = true
		}
	}
	errs = append(errs, downNamespaces(nsNames, inodes, st))
	errs = append(errs, downSSH(name, st))
	if err := os.RemoveAll(StateDir(name)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func downNamespaces(nsNames map[string]bool, inodes map[uint64]bool, st *State) error {
	var errs []error
	var pids []int
	seen := map[int]bool{os.Getpid(): true}
	if st != nil {
		for _, p := range st.Procs {
			if p.PID > 0 && !seen[p.PID] {
				if ino, ok := procNetnsInode(p.PID); ok && inodes[ino] {
					pids = append(pids, p.PID)
					seen[p.PID] = true
				}
			}
		}
	}
	for _, pid := range processesIn(inodes) {
		if !seen[pid] {
			pids = append(pids, pid)
			seen[pid] = true
		}
	}
	if err := killAndWait(pids); err != nil {
		errs = append(errs, err)
	}
	for n := range nsNames {
		if _, err := os.Lstat(NetnsDir + "/" + n); err != nil {
			continue
		}
		if err := netns.DeleteNamed(n); err != nil {
			errs = append(errs, fmt.Errorf("delete namespace %s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// processesIn lists the processes whose network namespace inode is in
// inodes.
func processesIn(inodes map[uint64]bool) []int {
	if len(inodes) == 0 {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var r []int
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if ino, ok := procNetnsInode(pid); ok && inodes[ino] {
			r = append(r, pid)
		}
	}
	return r
}

// DownAll removes every lab: each state directory under StateRoot and every
// namespace under /run/netns whose name starts with "lvsd", with the
// processes inside them.
func DownAll() error {
	var errs []error
	if ents, err := os.ReadDir(StateRoot); err == nil {
		for _, d := range ents {
			if d.IsDir() && ValidateName(d.Name()) == nil {
				if err := Down(d.Name()); err != nil {
					errs = append(errs, fmt.Errorf("lab %s: %w", d.Name(), err))
				}
			} else if err := os.RemoveAll(StateRoot + "/" + d.Name()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	nsNames := map[string]bool{}
	inodes := map[uint64]bool{}
	if ents, err := os.ReadDir(NetnsDir); err == nil {
		for _, d := range ents {
			if strings.HasPrefix(d.Name(), NamePrefix) {
				nsNames[d.Name()] = true
				if ino, ok := nsInode(d.Name()); ok {
					inodes[ino] = true
				}
			}
		}
	}
	if err := downNamespaces(nsNames, inodes, nil); err != nil {
		errs = append(errs, err)
	}
	// Sudoers drop-ins of labs whose state is gone (lab up --ssh-user).
	if m, _ := filepath.Glob(filepath.Join(sudoersDir, "lvsdoctor-lab-*")); len(m) > 0 {
		for _, p := range m {
			if err := os.Remove(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
