package nsthread

import (
	"syscall"
	"testing"

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
