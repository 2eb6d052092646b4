package vmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// vmFaults are the matrix rows the VM test runs on kernel IPVS: each must
// be diagnosed exactly (the healthy lab clean).
var vmFaults = []string{
	"healthy",
	"icmp-redirect-bypass",
	"director-no-forwarding",
	"director-firewall-drops-replies",
	"service-missing",
	"rs-weight-zero",
	"director-ftp-helper-missing",
	"persistence-needed",
}

// TestMatrixOnKernelIPVS boots Debian's cloud kernel under qemu (TCG) and
// runs `lvsdoctor lab matrix --datapath ipvs` for vmFaults inside. It is
// opt-in (LVSDOCTOR_VMTEST=1): it takes minutes and needs qemu, so it skips
// otherwise, LVSDOCTOR_REQUIRE_ALL included. LVSDOCTOR_VMTEST_INSTALL=1
// lets it apt-get what is missing; LVSDOCTOR_VMTEST_FAULTS (comma
// separated) picks other rows.
func TestMatrixOnKernelIPVS(t *testing.T) {
	if os.Getenv("LVSDOCTOR_VMTEST") != "1" {
		t.Skip("opt-in VM test (boots a kernel with IPVS under qemu TCG for several minutes): set LVSDOCTOR_VMTEST=1 to run it; LVSDOCTOR_REQUIRE_ALL does not require it")
	}
	if os.Geteuid() != 0 {
		t.Skip("LVSDOCTOR_VMTEST=1 but not root: the VM test writes " + DefaultCacheDir + " (and apt-get with LVSDOCTOR_VMTEST_INSTALL=1)")
	}
	install := os.Getenv("LVSDOCTOR_VMTEST_INSTALL") == "1"
	if m := Missing(DefaultCacheDir); len(m) > 0 && !install {
		t.Skipf("LVSDOCTOR_VMTEST=1 but missing %s: apt-get install qemu-system-x86 busybox-static and apt-get download the kernel of linux-image-cloud-amd64 (or set LVSDOCTOR_VMTEST_INSTALL=1)", strings.Join(m, ", "))
	}
	faults := vmFaults
	if s := os.Getenv("LVSDOCTOR_VMTEST_FAULTS"); s != "" {
		faults = strings.Split(s, ",")
	}
	args := []string{"lab", "matrix", "--datapath", "ipvs", "--format", "json", "--parallel", "1", "--timeout", "6s"}
	for _, f := range faults {
		args = append(args, "--fault", f)
	}
	var log bytes.Buffer
	start := time.Now()
	res, err := Run(context.Background(), Config{Install: install, Args: args, Timeout: 40 * time.Minute, Log: &log})
	if res != nil {
		t.Logf("kernel %s: prepare %.1fs, boot to /init %.1fs, modules %.1fs, lvsdoctor %.1fs, qemu %.1fs, whole test %.1fs",
			res.Kernel, res.Prepare.Seconds(), res.Boot.Seconds(), res.Modules.Seconds(), res.Run.Seconds(), res.Total.Seconds(), time.Since(start).Seconds())
		if len(res.ModuleErrs) > 0 {
			t.Logf("modules not loaded: %s", strings.Join(res.ModuleErrs, "; "))
		}
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, lastLines(log.String(), 40))
	}
	var m struct {
		Rows []struct {
			Case struct {
				ID      string `json:"id"`
				Variant string `json:"variant"`
			} `json:"case"`
			Errors   []string `json:"errors"`
			Warnings []string `json:"warnings"`
			Outcome  string   `json:"outcome"`
			Detail   string   `json:"detail"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(res.Stdout, &m); err != nil {
		t.Fatalf("matrix JSON: %v\nstdout: %s\nstderr: %s", err, res.Stdout, res.Stderr)
	}
	for _, r := range m.Rows {
		id := r.Case.ID
		if id == "" {
			id = "healthy"
		}
		if r.Case.Variant != "" {
			id += " --variant " + r.Case.Variant
		}
		if r.Outcome != "exact" && r.Outcome != "clean" {
			t.Errorf("%s on kernel IPVS: %s (%s) errors %v warnings %v", id, r.Outcome, r.Detail, r.Errors, r.Warnings)
		} else {
			t.Logf("%s on kernel IPVS: %s", id, r.Outcome)
		}
	}
	if len(m.Rows) == 0 {
		t.Fatalf("no matrix rows; stderr: %s", res.Stderr)
	}
}

// TestCpio checks the newc writer's framing: 110-byte headers, names and
// data padded to 4 bytes, the trailer last.
func TestCpio(t *testing.T) {
	var b bytes.Buffer
	if err := writeCpio(&b, []cpioFile{{name: "init", mode: 0o100755, data: []byte("#!/bin/sh\n")}, {name: "dev", mode: 0o40755}}); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	if !strings.HasPrefix(s, "070701") || b.Len()%4 != 0 || !strings.Contains(s, "TRAILER!!!\x00") {
		t.Fatalf("bad archive %q", s)
	}
	// First entry: header (110) + "init\0" (5) padded to 116, data 10 padded to 12.
	if got := s[116 : 116+10]; got != "#!/bin/sh\n" {
		t.Fatalf("data at 116: %q", got)
	}
	if !strings.HasPrefix(s[128:], "070701") {
		t.Fatalf("second header not at 128: %q", s[128:140])
	}
}
