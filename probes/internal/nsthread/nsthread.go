// Package nsthread runs work on OS threads switched into a network
// namespace. A probe may run on a thread switched into the host it
// inspects (ops.Namespaces); a plain goroutine would open its sockets in
// the agent's own namespace instead.
package nsthread

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Run calls fn on a thread switched into ns and waits for it; a panic in
// fn is raised again here. The thread is never the process's main thread
// and is discarded afterwards, never shared with other goroutines.
//
// Not the main thread: /proc/PID/ns/net is the main thread's namespace,
// which is how `lab down` finds the processes inside a lab, and Go never
// ends the main thread, so a goroutine that exits locked to it would
// leave the whole process looking as if it lived in that namespace.
func Run(ns netns.NsHandle, fn func()) error {
	var (
		err   error
		fault any
		done  = make(chan struct{})
	)
	var run func()
	run = func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// Held by this goroutine, the main thread cannot be given
			// to the one that does the work; it is let go unswitched.
			go run()
			<-done
			runtime.UnlockOSThread()
			return
		}
		defer close(done)
		// Never unlocked: the switched thread ends with this goroutine.
		if err = netns.Set(ns); err != nil {
			err = fmt.Errorf("entering the network namespace: %w", err)
			return
		}
		defer func() { fault = recover() }()
		fn()
	}
	go run()
	<-done
	if fault != nil {
		panic(fault)
	}
	return err
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
