package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// inNS runs fn on a fresh OS thread that has been switched into ns. The
// thread is switched back afterwards; if that fails, the thread stays locked
// and dies with its goroutine instead of returning to Go's pool in the wrong
// namespace.
func inNS(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("get current netns: %w", err)
			return // thread dies locked
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter netns: %w", err)
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread()
			}
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("restore netns: %w", err))
			return // thread dies locked
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// createNS creates the named namespace (bind-mounted under /run/netns) from
// a locked thread, and runs init inside it before the thread goes back.
func createNS(name string, init func() error) (netns.NsHandle, error) {
	var h netns.NsHandle = -1
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		ns, err := netns.NewNamed(name) // unshares this thread into ns
		if err != nil {
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread()
			}
			errc <- fmt.Errorf("create netns %s: %w", name, err)
			return
		}
		h = ns
		var ierr error
		if init != nil {
			ierr = init()
		}
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ierr, fmt.Errorf("restore netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ierr
	}()
	err := <-errc
	return h, err
}

// sysctlPath maps "net.ipv4.conf.all.rp_filter" to its /proc/sys path.
// Interface names never contain dots here, so a plain replacement works.
func sysctlPath(key string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
}

// writeSysctls writes and re-reads the sysctls; it must run on a thread
// that is inside the target namespace (see inNS). Keys whose file does not
// exist are skipped when optional reports true for them.
func writeSysctls(kv []sysctl) error {
	var errs []error
	for _, s := range kv {
		p := sysctlPath(s.Key)
		if err := os.WriteFile(p, []byte(s.Value+"\n"), 0o644); err != nil {
			if s.Optional && errors.Is(err, os.ErrNotExist) {
				continue
			}
			errs = append(errs, fmt.Errorf("sysctl %s=%s: %w", s.Key, s.Value, err))
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("sysctl %s: %w", s.Key, err))
			continue
		}
		if norm(string(got)) != norm(s.Value) {
			errs = append(errs, fmt.Errorf("sysctl %s: wrote %q, reads %q", s.Key, s.Value, strings.TrimSpace(string(got))))
		}
	}
	return errors.Join(errs...)
}

func norm(s string) string { return strings.Join(strings.Fields(s), " ") }

// readSysctl reads a sysctl inside ns.
func readSysctl(ns netns.NsHandle, key string) (string, error) {
	var v string
	err := inNS(ns, func() error {
		b, err := os.ReadFile(sysctlPath(key))
		v = norm(string(b))
		return err
	})
	return v, err
}

// setSysctls writes sysctls inside ns and verifies them.
func setSysctls(ns netns.NsHandle, kv []sysctl) error {
	return inNS(ns, func() error { return writeSysctls(kv) })
}

type sysctl struct {
	Key, Value string
	Optional   bool
}
