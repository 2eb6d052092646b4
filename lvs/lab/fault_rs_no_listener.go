package lab

// rs-no-listener (HOWTO Q.4 A.2): nothing listens on RIP:RPORT. The HTTP
// service process of the real server is killed, so the real server answers
// the director's forwarded SYN with a RST (the client sees it from the VIP).

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
)

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: "rs-no-listener", Summary: "stop the real server's HTTP service"},
		hostKind:  "rs",
		inject: func(ctx context.Context, e *env, h *Host, _ string) error {
			var addr string
			for _, p := range e.st.Procs {
				if p.Host == h.Role && p.Kind == KindHTTP {
					addr = p.Addr
				}
			}
			if err := e.stopProc(h.Role, KindHTTP); err != nil {
				return err
			}
			// Verify: a connect on the real server itself is refused. The
			// stopped server's socket can outlive the kill by a moment
			// (a connect then gets a reset instead): ask again briefly.
			var err error
			for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				err = inNS(e.handle(h.Role), func() error { return reachOnce("tcp", addr, time.Second) })
				if errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(deadline) {
					break
				}
			}
			if !errors.Is(err, syscall.ECONNREFUSED) {
				return fmt.Errorf("%s: %s still accepts connections (%v)", h.Role, addr, err)
			}
			return nil
		},
	})
}
