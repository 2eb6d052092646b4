package lab

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fetch does n HTTP requests to the VIP from the client with a short
// timeout: answers by rs, and the errors.
func fetch(st *State, n int) (map[string]int, []error) {
	m := map[string]int{}
	var errs []error
	for i := 0; i < n; i++ {
		_, body, err := HTTPGet(st.Host(RoleClient).Namespace, VIP.String()+":80", 400*time.Millisecond)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m[strings.TrimSpace(body)]++
	}
	return m, errs
}

func mustHealthy(t *testing.T, st *State) {
	t.Helper()
	m, errs := fetch(st, 4)
	if len(errs) > 0 || m["rs1"] != 2 || m["rs2"] != 2 {
		t.Fatalf("not healthy: answers %v, errors %v", m, errs)
	}
	if err := rsReachesClient(st, "rs1"); err != nil {
		t.Fatalf("not healthy: rs1 cannot reach the client: %v", err)
	}
}

// rsReachesClient connects from rs to CIP:9, where nothing listens: a
// refusal means the SYN got there and the RST came back.
func rsReachesClient(st *State, rs string) error {
	err := RunIn(st.Host(rs).Namespace, func() error {
		return reachOnce("tcp", st.ClientIP().String()+":9", 400*time.Millisecond)
	})
	if errors.Is(err, syscall.ECONNREFUSED) {
		return nil
	}
	if err == nil {
		return errors.New("connected to the client's discard port?")
	}
	return err
}

func TestFaults(t *testing.T) {
	st := upTest(t, Options{RealServers: 2})
	ctx := context.Background()
	name := st.Name
	mustHealthy(t, st)

	inject := func(t *testing.T, id, host, variant string) {
		t.Helper()
		if err := Inject(ctx, name, id, host, variant); err != nil {
			t.Fatalf("inject %s@%s %s: %v", id, host, variant, err)
		}
	}
	clear := func(t *testing.T) {
		t.Helper()
		start := time.Now()
		if err := Clear(ctx, name); err != nil {
			t.Fatalf("clear: %v", err)
		}
		t.Logf("clear took %v", time.Since(start))
		s, err := Load(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Faults) != 0 {
			t.Errorf("faults after clear: %v", s.Faults)
		}
		mustHealthy(t, st)
	}
	// wantBroken expects the requests that land on rs (or all, rs == "")
	// to fail, and the others to succeed.
	wantBroken := func(t *testing.T, rs string, check func(error) bool) {
		t.Helper()
		m, errs := fetch(st, 4)
		wantErr := 4
		if rs != "" {
			wantErr = 2
		}
		if len(errs) != wantErr || m[rs] != 0 {
			t.Errorf("answers %v, %d errors (%v); want %d errors", m, len(errs), errs, wantErr)
		}
		for _, err := range errs {
			if check != nil && !check(err) {
				t.Errorf("unexpected error kind: %v", err)
			}
		}
	}
	refused := func(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
	timeout := func(err error) bool { return strings.Contains(err.Error(), "timeout") }

	t.Run("rs-no-listener", func(t *testing.T) {
		inject(t, "rs-no-listener", "", "")
		wantBroken(t, "rs1", refused)
		clear(t)
	})
	for _, v := range []string{"router-reaches-client", "router-drops", "no-default"} {
		t.Run("rs-wrong-gateway/"+v, func(t *testing.T) {
			inject(t, "rs-wrong-gateway@rs2", "", v)
			wantBroken(t, "rs2", timeout)
			clear(t)
		})
	}
	t.Run("director-no-forwarding", func(t *testing.T) {
		inject(t, "director-no-forwarding", "", "")
		e, _ := open(st)
		defer e.close()
		if err := e.checkSysctl(RoleDirector, "net.ipv4.ip_forward", "0"); err != nil {
			t.Error(err)
		}
		wantBroken(t, "", timeout)
		clear(t)
	})
	t.Run("director-no-masquerade", func(t *testing.T) {
		inject(t, "director-no-masquerade", "", "")
		if err := rsReachesClient(st, "rs1"); err == nil {
			t.Error("rs1 still reaches the client without masquerade")
		}
		if m, errs := fetch(st, 2); len(errs) > 0 {
			t.Errorf("LVS connections broke too: %v %v", m, errs)
		}
		clear(t)
	})
	t.Run("director-firewall-drops-replies", func(t *testing.T) {
		inject(t, "director-firewall-drops-replies", "director", "")
		wantBroken(t, "", timeout)
		clear(t)
	})
	for _, v := range []string{"cold", "warm"} {
		t.Run("director-rpfilter-requests/"+v, func(t *testing.T) {
			inject(t, "director-rpfilter-requests", "", v)
			wantBroken(t, "", nil)
			clear(t)
		})
	}
	t.Run("two-at-once", func(t *testing.T) {
		inject(t, "rs-no-listener", "rs2", "")
		inject(t, "rs-wrong-gateway", "rs1", "no-default")
		s, _ := Load(name)
		if len(s.Faults) != 2 {
			t.Errorf("faults recorded: %v", s.Faults)
		}
		wantBroken(t, "", nil)
		clear(t)
	})
	t.Run("bad-input", func(t *testing.T) {
		for _, c := range [][3]string{
			{"no-such-fault", "", ""},
			{"rs-wrong-gateway", "", "sideways"},
			{"rs-wrong-gateway", "director", ""},
			{"rs-wrong-gateway", "rs9", ""},
			{"director-no-forwarding", "rs1", ""},
			{"director-no-forwarding", "", "x"},
		} {
			if err := Inject(ctx, name, c[0], c[1], c[2]); !errors.Is(err, ErrBadFault) {
				t.Errorf("Inject(%v) = %v, want ErrBadFault", c, err)
			}
		}
		s, _ := Load(name)
		if len(s.Faults) != 0 {
			t.Errorf("bad input recorded faults: %v", s.Faults)
		}
	})
}
