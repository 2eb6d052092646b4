package nsthread

import (
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lvsdoctor/lvsdoctor/probes/internal/nstest"
	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
)

// Every fn runs in the namespace of the thread that called Each, not in
// the process's.
func TestEachInCallersNamespace(t *testing.T) {
	testenv.RequireRoot(t)
	ns := nstest.New(t)
	var want syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+ns.Name, &want); err != nil {
		t.Fatal(err)
	}
	got := make([]uint64, 8)
	ns.MustDo(t, func() error {
		return Each(len(got), func(i int) {
			var st syscall.Stat_t
			if syscall.Stat("/proc/thread-self/ns/net", &st) == nil {
				got[i] = st.Ino
			}
		})
	})
	for i, ino := range got {
		if ino != want.Ino {
			t.Errorf("fn(%d) ran in namespace %d, want %d", i, ino, want.Ino)
		}
	}
	var self syscall.Stat_t
	if err := syscall.Stat("/proc/thread-self/ns/net", &self); err != nil || self.Ino == want.Ino {
		t.Errorf("the test's own thread was left in the namespace (%v)", err)
	}
}

// Run never switches the main thread, whose namespace is the one the
// whole process shows in /proc/PID/ns/net.
func TestRunNeverOnMainThread(t *testing.T) {
	testenv.RequireRoot(t)
	ns := nstest.New(t)
	var main atomic.Int32
	var wg sync.WaitGroup
	for range 2000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := Run(ns.Handle, func() {
				if unix.Gettid() == unix.Getpid() {
					main.Add(1)
				}
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := main.Load(); n > 0 {
		t.Errorf("%d of 2000 runs were on the main thread", n)
	}
	var self, proc syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &proc); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat("/run/netns/"+ns.Name, &self); err != nil || self.Ino == proc.Ino {
		t.Errorf("the process's main thread was left in the namespace (%v)", err)
	}
}

// A panic in fn comes back to Run's caller, as if fn had run there.
func TestRunPanics(t *testing.T) {
	testenv.RequireRoot(t)
	ns := nstest.New(t)
	defer func() {
		if p := recover(); p != "boom" {
			t.Errorf("recovered %v, want boom", p)
		}
	}()
	_ = Run(ns.Handle, func() { panic("boom") })
}
