// Package nsthread runs work on OS threads switched into a network
// namespace. A probe may run on a thread switched into the host it
// inspects (ops.Namespaces); a plain goroutine would open its sockets in
// the agent's own namespace instead.
//
// A switched thread is kept for the namespace's next request: starting a
// thread, switching it and ending it again cost about 70 µs of CPU, and a
// check of fifty real servers asked for some 600 of them, one per request
// and per captured interface. A kept thread runs only work given for its
// namespace, one piece at a time, and ends once it has been idle for
// idleTimeout, when its namespace is let go (Forget), or when the work
// panicked (what it left behind in the thread is unknown).
package nsthread

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Idle threads kept per namespace, and for how long: a host's requests
// come a few at a time (ping, traceroute and route lookup together), and
// a check's come within a second of each other.
const keepPerNS = 4

var idleTimeout = time.Second // guarded by mu: tests shorten it

// key names a namespace by its nsfs inode, the same whichever handle
// (file descriptor) it was opened through.
type key struct{ dev, ino uint64 }

func keyOf(ns netns.NsHandle) (key, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(ns), &st); err != nil {
		return key{}, fmt.Errorf("the network namespace's handle: %w", err)
	}
	return key{uint64(st.Dev), st.Ino}, nil
}

// pool is one namespace's idle threads; a forgotten pool takes none back.
type pool struct {
	idle      []*worker
	forgotten bool
}

type job struct {
	fn   func()
	done chan any // the panic, or nil
}

type worker struct {
	p       *pool
	jobs    chan job
	idleFor time.Duration
}

var (
	mu    sync.Mutex
	pools = map[key]*pool{}
)

// Run calls fn on a thread switched into ns and waits for it; a panic in
// fn is raised again here. The thread is never the process's main thread
// and runs nothing but work given for ns through Run and Each.
//
// Not the main thread: /proc/PID/ns/net is the main thread's namespace,
// which is how `lab down` finds the processes inside a lab, and Go never
// ends the main thread, so a goroutine that exits locked to it would
// leave the whole process looking as if it lived in that namespace.
func Run(ns netns.NsHandle, fn func()) error {
	k, err := keyOf(ns)
	if err != nil {
		return err
	}
	w := take(k)
	if w == nil {
		if w, err = start(ns, k); err != nil {
			return err
		}
	}
	done := make(chan any, 1)
	w.jobs <- job{fn: fn, done: done}
	if fault := <-done; fault != nil {
		panic(fault)
	}
	return nil
}

// take returns an idle thread of k's namespace, or nil.
func take(k key) *worker {
	mu.Lock()
	defer mu.Unlock()
	p := pools[k]
	if p == nil || len(p.idle) == 0 {
		return nil
	}
	w := p.idle[len(p.idle)-1]
	p.idle = p.idle[:len(p.idle)-1]
	return w
}

// start makes a thread switched into ns, kept in k's pool once idle.
func start(ns netns.NsHandle, k key) (*worker, error) {
	mu.Lock()
	p := pools[k]
	if p == nil {
		p = &pool{}
		pools[k] = p
	}
	w := &worker{p: p, jobs: make(chan job), idleFor: idleTimeout}
	mu.Unlock()
	ready := make(chan error, 1)
	go w.run(ns, ready, nil)
	return w, <-ready
}

// run locks a thread other than the main one, switches it into ns and
// serves jobs on it. It never unlocks: the thread ends with the goroutine.
func (w *worker) run(ns netns.NsHandle, ready chan<- error, locked chan<- struct{}) {
	runtime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		// Held by this goroutine until the new one has a thread of its
		// own, the main thread cannot be given to it; it is let go
		// unswitched.
		l := make(chan struct{})
		go w.run(ns, ready, l)
		<-l
		runtime.UnlockOSThread()
		return
	}
	if locked != nil {
		close(locked)
	}
	if err := netns.Set(ns); err != nil {
		ready <- fmt.Errorf("entering the network namespace: %w", err)
		return
	}
	ready <- nil
	idle := time.NewTimer(w.idleFor)
	defer idle.Stop()
	for {
		select {
		case j, ok := <-w.jobs:
			if !ok {
				return
			}
			if fault := call(j.fn); fault != nil {
				j.done <- fault
				return
			}
			kept := w.park()
			j.done <- nil
			if !kept {
				return
			}
			idle.Reset(w.idleFor)
		case <-idle.C:
			if w.retire() {
				return
			}
			// Taken just now: its job is on the way.
			idle.Reset(w.idleFor)
		}
	}
}

func call(fn func()) (fault any) {
	defer func() {
		if p := recover(); p != nil {
			fault = p
		}
	}()
	fn()
	return nil
}

// park puts w back among its namespace's idle threads, or says it is not
// wanted there (pool full, or the namespace forgotten).
func (w *worker) park() bool {
	mu.Lock()
	defer mu.Unlock()
	if w.p.forgotten || len(w.p.idle) >= keepPerNS {
		return false
	}
	w.p.idle = append(w.p.idle, w)
	return true
}

// retire takes idle w out of its pool, unless a Run took it first.
func (w *worker) retire() bool {
	mu.Lock()
	defer mu.Unlock()
	for i, x := range w.p.idle {
		if x == w {
			w.p.idle = append(w.p.idle[:i], w.p.idle[i+1:]...)
			return true
		}
	}
	return false
}

// Forget ends the idle threads switched into ns and keeps none there from
// now on: a namespace that is let go must not be held alive by them. A
// later Run for it starts a new pool.
func Forget(ns netns.NsHandle) {
	k, err := keyOf(ns)
	if err != nil {
		return
	}
	mu.Lock()
	p := pools[k]
	delete(pools, k)
	var idle []*worker
	if p != nil {
		p.forgotten = true
		idle, p.idle = p.idle, nil
	}
	mu.Unlock()
	for _, w := range idle {
		close(w.jobs)
	}
}

// Each calls fn(0) ... fn(n-1) at once, each through Run in the calling
// thread's network namespace, and waits for them.
func Each(n int, fn func(i int)) error {
	ns, err := netns.Get()
	if err != nil {
		return fmt.Errorf("this thread's network namespace: %w", err)
	}
	defer ns.Close()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = Run(ns, func() { fn(i) })
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
