// Command lvsdoctor checks a Linux Virtual Server NAT setup step by step, as
// Julian Anastasov's HOWTO does by hand, and carries a lab that reproduces
// every fault it knows. The logic lives in the packages; this file only
// wires the commands.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// Exit codes of DESIGN.md.
const (
	exitHealthy      = 0
	exitFaulty       = 1
	exitUsage        = 2
	exitInconclusive = 3
)

// controllerMemLimit is a soft limit under the controller's 64 MiB budget.
const controllerMemLimit = 48 << 20

// exitError carries an exit code through cobra's error return.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

var rootCmd = &cobra.Command{
	Use:   "lvsdoctor",
	Short: "Check an LVS-NAT (IPVS) setup step by step, as the LVS HOWTO does",
	Long: `lvsdoctor runs the checks of Julian Anastasov's "HOWTO check step-by-step a
Layer 4 LVS-NAT setup" (Q.1-Q.4) on the client, the director and every real
server at once, follows test connections through every interface, and names
what is wrong, with the evidence and the command that fixes it.`,
	Example: `  # stand up the lab, check it, break it, check again, tear it down
  sudo lvsdoctor lab up
  sudo lvsdoctor check -f lab.yaml
  sudo lvsdoctor lab fault rs-wrong-gateway
  sudo lvsdoctor check -f lab.yaml
  sudo lvsdoctor lab down

  # everything above in one go
  sudo lvsdoctor lab demo`,
	SilenceUsage:  true,
	SilenceErrors: true,
	Version:       version,
}

// selfStats prints this process's own peak memory for the benchmark
// (its children's, the agents', are printed as each ends).
func selfStats() {
	if os.Getenv("LVSDOCTOR_STATS") == "" || (len(os.Args) > 1 && os.Args[1] == "agent") {
		return
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		fmt.Fprintf(os.Stderr, "lvsdoctor-stats controller self maxrss_kb %d utime_ms %d stime_ms %d\n", ru.Maxrss, ru.Utime.Nano()/1e6, ru.Stime.Nano()/1e6)
	}
}

func main() {
	// A check holds every host's observations at once. It collects at a
	// third of the default pace (the 50-server lab: a tenth less of the
	// controller's CPU, 40 MiB at its peak instead of 36), and a soft
	// memory limit makes the collector work harder instead on a cluster
	// big enough to near the budget of 64 MiB (GOGC and GOMEMLIMIT
	// override them). The agent sets its own pace.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(300)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(controllerMemLimit)
	}
	rootCmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: fmt.Errorf("%w\nsee '%s --help'", err, c.CommandPath())}
	})
	err := rootCmd.Execute()
	selfStats()
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(os.Stderr, "lvsdoctor:", ee.err)
		}
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "lvsdoctor:", err)
	// Unknown commands and flag errors are usage errors; anything else that
	// stopped a command before it could judge the cluster is inconclusive.
	os.Exit(exitUsage)
}
