package nsthread

import (
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lvsdoctor/lvsdoctor/probes/internal/nstest"
	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
)

// Every fn runs in the namespace of the thread that called Each, not in
// the process's.
func TestEachInCallersNamespace(t *testing.T) {
	testenv.RequireRoot(t)
	ns := nstest.New(t)
	want := ns.Inode(t)
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
		if ino != want {
			t.Errorf("fn(%d) ran in namespace %d, want %d", i, ino, want)
		}
	}
	var self syscall.Stat_t
	if err := syscall.Stat("/proc/thread-self/ns/net", &self); err != nil || self.Ino == want {
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

// threadsIn counts this process's threads switched into the namespace
// whose inode is ino.
func threadsIn(t *testing.T, ino uint64) int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, task := range tasks {
		var st syscall.Stat_t
		if syscall.Stat("/proc/self/task/"+task.Name()+"/ns/net", &st) == nil && st.Ino == ino {
			n++
		}
	}
	return n
}

// waitThreads waits (a second at most) for the namespace to hold want
// threads of this process.
func waitThreads(t *testing.T, ino uint64, want int) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for threadsIn(t, ino) != want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := threadsIn(t, ino); n != want {
		t.Fatalf("%d threads in the namespace, want %d", n, want)
	}
}

// The next request to a namespace runs on the thread the last one left
// switched there; Forget ends it, so the namespace is not held alive.
func TestRunKeepsThread(t *testing.T) {
	testenv.RequireRoot(t)
	ns := nstest.New(t)
	ino := ns.Inode(t)
	tid := func() (id int) {
		if err := Run(ns.Handle, func() { id = unix.Gettid() }); err != nil {
			t.Fatal(err)
		}
		return id
	}
	first := tid()
	if second := tid(); second != first {
		t.Errorf("the second run was on thread %d, the first on %d: not kept", second, first)
	}
	waitThreads(t, ino, 1)
	Forget(ns.Handle)
	waitThreads(t, ino, 0)
	if third := tid(); third == first {
		t.Errorf("after Forget, a run was on the forgotten thread %d", third)
	}
	Forget(ns.Handle)
	waitThreads(t, ino, 0)
}

// Beyond keepPerNS at once, the threads end after their work; the kept
// ones end once idle for idleTimeout.
func TestIdleThreadsEnd(t *testing.T) {
	testenv.RequireRoot(t)
	ns := nstest.New(t)
	ino := ns.Inode(t)
	mu.Lock()
	old := idleTimeout
	idleTimeout = 100 * time.Millisecond
	mu.Unlock()
	t.Cleanup(func() { mu.Lock(); idleTimeout = old; mu.Unlock() })
	var started sync.WaitGroup
	started.Add(3 * keepPerNS)
	ns.MustDo(t, func() error {
		return Each(3*keepPerNS, func(int) {
			started.Done()
			started.Wait() // all at once: no thread serves two
		})
	})
	waitThreads(t, ino, keepPerNS)
	time.Sleep(100 * time.Millisecond)
	waitThreads(t, ino, 0)
}

// A run that panicked leaves its thread to end: what the panicking code
// left switched or locked there is unknown.
func TestPanicEndsThread(t *testing.T) {
	testenv.RequireRoot(t)
	ns := nstest.New(t)
	var id int
	func() {
		defer func() { _ = recover() }()
		_ = Run(ns.Handle, func() { id = unix.Gettid(); panic("boom") })
	}()
	var next int
	if err := Run(ns.Handle, func() { next = unix.Gettid() }); err != nil {
		t.Fatal(err)
	}
	if next == id {
		t.Errorf("a run after a panic was on the panicking thread %d", id)
	}
	Forget(ns.Handle)
}
