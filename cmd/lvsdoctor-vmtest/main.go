// Command lvsdoctor-vmtest runs lvsdoctor on a kernel with IPVS inside a
// qemu VM (package lvs/lab/vmtest): by default the lab matrix on the ipvs
// datapath, and prints the matrix and the VM's timings.
//
//	sudo go run ./cmd/lvsdoctor-vmtest -install
//	sudo go run ./cmd/lvsdoctor-vmtest -fault healthy -fault service-missing
//	sudo go run ./cmd/lvsdoctor-vmtest -- lab up --datapath ipvs
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/lvsdoctor/lvsdoctor/lvs/lab/vmtest"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func main() {
	var (
		cfg    vmtest.Config
		faults multi
		out    string
		quiet  bool
	)
	flag.StringVar(&cfg.CacheDir, "cache", vmtest.DefaultCacheDir, "cache directory (kernel, binary, initramfs)")
	flag.BoolVar(&cfg.Install, "install", false, "apt-get install qemu-system-x86 and busybox-static, download the cloud kernel when missing")
	flag.StringVar(&cfg.Lvsdoctor, "lvsdoctor", "", "static lvsdoctor binary (default: go build with CGO_ENABLED=0)")
	flag.StringVar(&cfg.Memory, "m", "512M", "guest memory")
	flag.DurationVar(&cfg.Timeout, "timeout", 30*time.Minute, "bound of the VM run")
	flag.Var(&faults, "fault", "matrix row to run (repeatable; 'healthy'); default every row")
	flag.StringVar(&out, "o", "", "write lvsdoctor's stdout (the matrix JSON) to this file")
	flag.BoolVar(&quiet, "q", false, "no progress or console")
	script := flag.String("script", "", "busybox sh script to run in the guest instead of lvsdoctor (/bin/lvsdoctor)")
	timeout := flag.String("check-timeout", "6s", "the check's probe timeout inside the VM (emulation is slow)")
	flag.Parse()
	cfg.Args = flag.Args()
	if *script != "" {
		b, err := os.ReadFile(*script)
		if err != nil {
			fmt.Fprintln(os.Stderr, "vmtest:", err)
			os.Exit(2)
		}
		cfg.Script = string(b)
	}
	if len(cfg.Args) == 0 {
		cfg.Args = []string{"lab", "matrix", "--datapath", "ipvs", "--format", "json", "--parallel", "1", "--timeout", *timeout}
		for _, f := range faults {
			cfg.Args = append(cfg.Args, "--fault", f)
		}
	}
	if !quiet {
		cfg.Log = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := vmtest.Run(ctx, cfg)
	if res != nil {
		fmt.Fprintf(os.Stderr, "vmtest: kernel %s; prepare %.1fs, boot to /init %.1fs, modules %.1fs, lvsdoctor %.1fs, qemu total %.1fs; lvsdoctor exit %d\n",
			res.Kernel, res.Prepare.Seconds(), res.Boot.Seconds(), res.Modules.Seconds(), res.Run.Seconds(), res.Total.Seconds(), res.ExitCode)
		if len(res.ModuleErrs) > 0 {
			fmt.Fprintf(os.Stderr, "vmtest: modules not loaded: %s\n", strings.Join(res.ModuleErrs, "; "))
		}
		if len(res.Stderr) > 0 && !quiet {
			fmt.Fprintf(os.Stderr, "vmtest: lvsdoctor stderr:\n%s\n", res.Stderr)
		}
		if out != "" {
			if werr := os.WriteFile(out, res.Stdout, 0o644); werr != nil {
				fmt.Fprintln(os.Stderr, "vmtest:", werr)
			}
		}
		printRows(res.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest:", err)
		os.Exit(2)
	}
	os.Exit(res.ExitCode)
}

// printRows prints a matrix JSON as one line per row, or the raw output.
func printRows(b []byte) {
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
		Failed     int   `json:"failed"`
		DurationMS int64 `json:"duration_ms"`
	}
	if json.Unmarshal(b, &m) != nil || m.Rows == nil {
		os.Stdout.Write(b)
		return
	}
	for _, r := range m.Rows {
		id := r.Case.ID
		if id == "" {
			id = "(healthy)"
		}
		if r.Case.Variant != "" {
			id += " --variant " + r.Case.Variant
		}
		fmt.Printf("%-55s %-10s errors=%v warnings=%v %s\n", id, r.Outcome, r.Errors, r.Warnings, r.Detail)
	}
	fmt.Printf("%d rows, %d failed, %.1fs in the guest\n", len(m.Rows), m.Failed, float64(m.DurationMS)/1000)
}
