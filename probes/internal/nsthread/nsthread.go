// Package nsthread runs work on several goroutines at once, each on a
// thread in the calling thread's network namespace. A probe may run on a
// thread switched into the host it inspects (ops.Namespaces); a plain
// goroutine would open its sockets in the agent's own namespace instead.
package nsthread

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/vishvananda/netns"
)

// Each calls fn(0) ... fn(n-1) at once and waits for them. The threads
// that ran them are switched and then discarded, never shared.
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
			// Never unlocked: the thread ends with this goroutine.
			runtime.LockOSThread()
			if err := netns.Set(ns); err != nil {
				errs[i] = fmt.Errorf("entering the network namespace: %w", err)
				return
			}
			fn(i)
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
