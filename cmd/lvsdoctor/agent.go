package main

import (
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"

	"github.com/lvsdoctor/lvsdoctor/probes/agent"
	"github.com/lvsdoctor/lvsdoctor/probes/agent/ops"
	"github.com/spf13/cobra"
)

// agentMemLimit is the agent's soft limit for the Go heap and runtime;
// the binary's own pages and the capture rings come on top of it. An
// agent for netns: hosts serves at most eight (transport.hostsPerAgent),
// whose heap together stays well under it.
const agentMemLimit = 20 << 20

func init() {
	var inNetns bool
	c := &cobra.Command{
		Use:    "agent",
		Short:  "Serve probes on stdin/stdout (started by lvsdoctor check on each host)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// An agent lives for one check and allocates a few MiB per
			// host it serves; the collector's default pace (not the
			// controller's) keeps a busy director's agent within its
			// budget of 32 MiB resident, of which the binary's own pages
			// are about 13. (GOGC=400, kept while captures went as JSON,
			// let every agent's heap reach 16 MiB before its first
			// collection, for no CPU saved now.)
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(100)
			}
			if os.Getenv("GOMEMLIMIT") == "" {
				debug.SetMemoryLimit(agentMemLimit)
			}
			in := pollable(os.Stdin)
			if inNetns {
				n := ops.NewNamespaces()
				defer n.Close()
				return agent.Serve(cmd.Context(), in, os.Stdout, n.Route)
			}
			t, done := ops.Table()
			defer done()
			return agent.Serve(cmd.Context(), in, os.Stdout, agent.Single(t))
		},
	}
	c.Flags().BoolVar(&inNetns, "netns", false, "serve every network namespace that requests name (netns: hosts)")
	rootCmd.AddCommand(c)
}

// pollable is the controller's pipe (or sshd's) to read requests from,
// waited on in Go's netpoller. A pipe inherited as stdin is blocking, so
// its reader held a thread in read(2) between requests, which the
// scheduler takes a processor back from every time it waits over 10 ms
// and which keeps sysmon waking every 20 us (at fifty real servers, seven
// agents). A duplicate made non-blocking (the open file is shared: nothing
// else reads it) is pollable; a terminal or a file is left as it is.
func pollable(f *os.File) *os.File {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil {
		return f
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFIFO && t != unix.S_IFSOCK {
		return f
	}
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return f
	}
	if unix.SetNonblock(fd, true) != nil {
		unix.Close(fd)
		return f
	}
	return os.NewFile(uintptr(fd), f.Name())
}
