package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lvsdoctor/lvsdoctor/checks"
	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/caps"
	"github.com/lvsdoctor/lvsdoctor/probes/transport"
	"github.com/lvsdoctor/lvsdoctor/report"
	"github.com/spf13/cobra"
)

type checkFlags struct {
	file           string
	format         string
	outs           []string
	timeout        time.Duration
	maxConnections int
	static         bool
	pcapDir        string
	strict         bool
	quiet          bool
	noColor        bool
	observations   string
	verbose        bool
	dryRun         bool
	ssh            transport.SSHOptions
	src            sourceFlags
}

func newCheckCmd() *cobra.Command {
	var f checkFlags
	c := &cobra.Command{
		Use:   "check (-f TOPOLOGY | --keepalived FILE --director HOST --client HOST --hosts FILE)",
		Short: "Run the HOWTO's Q.1-Q.4 on every host of a cluster and name what is wrong",
		Long: `check reaches the client, the director and every real server of the topology
file at once, reads their static picture (addresses, routes, rp_filter and
other sysctls, firewall rules with counters, sockets), pings and traceroutes
the client from every RIP, captures on every interface while the client
opens test connections to each virtual service, and classifies what it saw
into the faults of the catalogue, each with evidence and a remedy.

Instead of a topology file, the services can come from keepalived.conf
(--keepalived: the check then also reports where the director's live IPVS
table differs from the file) or from the director's own table (--director
alone); the hosts are then given with --director, --client and --hosts
(lines "RIP HOST" saying how to reach each real server).

Exit codes: 0 healthy, 1 faulty (an error finding), 2 usage (bad flags or
topology file), 3 inconclusive (a host could not be reached or a probe could
not run, and no error finding).`,
		Example: `  sudo lvsdoctor check -f lab.yaml
  sudo lvsdoctor check -f cluster.yaml --format json > result.json
  sudo lvsdoctor check -f cluster.yaml --out report.md --out result.json
  sudo lvsdoctor check -f cluster.yaml --pcap /tmp/lvs-captures   # keep pcapng per host
  lvsdoctor check --keepalived keepalived.conf --director root@lb1 --client ops@bastion --hosts rips.txt
  lvsdoctor check --director root@lb1 --client ops@bastion --hosts rips.txt   # services from lb1's table
  # rips.txt:
  #   10.0.0.11 root@web1
  #   10.0.0.12 root@web2`,
		Args: checkNoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runCheck(cmd, f) },
	}
	c.Flags().StringVarP(&f.file, "file", "f", "", "topology file (YAML, see DESIGN.md)")
	c.Flags().StringVar(&f.src.keepalived, "keepalived", "", "take the services from this keepalived.conf (virtual_server blocks) and report where the director's table differs")
	c.Flags().StringVar(&f.src.director, "director", "", "the director (with --keepalived, or alone to take the services from its table): netns:NAME, ssh://[user@]host[:port], user@host, an ssh_config alias, local")
	c.Flags().StringVar(&f.src.client, "client", "", "with --keepalived or --director: the host that opens the test connections")
	c.Flags().StringVar(&f.src.clientAddr, "client-address", "", "with --keepalived or --director: the client's address (CIP), when it cannot be derived")
	c.Flags().StringVar(&f.src.hosts, "hosts", "", `with --keepalived or --director: host map, lines "RIP HOST" saying how to reach each real server`)
	f.register(c)
	return c
}

// checkNoArgs turns "check lab.yaml", an easy slip, into a usage error that
// says how to give the file, instead of cobra's "unknown command".
func checkNoArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErr("%s takes the topology file with -f, not as an argument (got %q): %s -f FILE", cmd.CommandPath(), strings.Join(args, " "), cmd.CommandPath())
	}
	return nil
}

// register adds the flags that shape a check and its output.
func (f *checkFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&f.format, "format", "text", "output on stdout: text, json, markdown, junit")
	fl.StringArrayVar(&f.outs, "out", nil, "also write the result to FILE, format from the extension (.json, .md, .xml for JUnit, .txt); repeatable")
	fl.DurationVar(&f.timeout, "timeout", time.Second, "how long a probe waits for an answer that may never come")
	fl.IntVar(&f.maxConnections, "max-connections", 64, "at most this many test connections per service")
	fl.BoolVar(&f.static, "static", false, "look only: no test traffic, no capture")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print what would run on which host (with the equivalent manual commands), contact none")
	fl.StringVar(&f.pcapDir, "pcap", "", "keep every host's capture as pcapng in this directory (on that host)")
	fl.BoolVar(&f.strict, "strict", false, "warnings count as faults (exit 1)")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "no progress, and on stdout only the verdict line (text format)")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "progress on stderr as timestamped lines, even when it is not a terminal")
	fl.BoolVar(&f.noColor, "no-color", false, "no colour (also when NO_COLOR is set)")
	fl.StringVar(&f.ssh.ConfigFile, "ssh-config", "", "ssh_config file for ssh hosts (default ~/.ssh/config, then /etc/ssh/ssh_config)")
	fl.BoolVar(&f.ssh.AcceptNewHostKeys, "accept-new-host-keys", false, "record the host keys of SSH hosts not yet in known_hosts (like StrictHostKeyChecking=accept-new); a changed key is always refused")
	fl.BoolVar(&f.ssh.KeepAgent, "keep-agent", false, "leave the uploaded agent in ~/.cache/lvsdoctor on SSH hosts, for faster repeated runs")
	fl.StringVar(&f.ssh.AgentPath, "agent", "", "path of an lvsdoctor already on the SSH hosts (another CPU architecture, no uploads)")
	fl.DurationVar(&f.ssh.Timeout, "ssh-timeout", 10*time.Second, "bound on every remote step over SSH (connect, handshake, upload)")
	fl.StringVar(&f.observations, "observations", "", "also write everything the probes saw (the classifier's input, JSON) to FILE: a fixture to replay, or to attach to a bug report")
}

func init() { rootCmd.AddCommand(newCheckCmd()) }

func runCheck(cmd *cobra.Command, f checkFlags) error {
	switch {
	case f.file == "" && !f.src.given():
		return usageErr("check needs a topology: -f FILE (lvsdoctor lab up writes one), or --keepalived FILE / --director HOST with --client and --hosts")
	case f.file != "" && f.src.given():
		return usageErr("give either -f FILE or --keepalived/--director, not both")
	case f.src.director != "" && f.src.keepalived == "" && f.dryRun:
		return usageErr("--dry-run contacts no host, and --director alone must read the director's table: write the topology with lvsdoctor discover, then check -f FILE --dry-run")
	}
	if err := f.validate(); err != nil {
		return err
	}
	if f.src.given() {
		top, err := f.src.topology(cmd.Context())
		if err != nil {
			return err
		}
		return checkTopology(cmd, f, top)
	}
	top, err := topology.Load(f.file)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	return checkTopology(cmd, f, top)
}

func (f checkFlags) validate() error {
	if !validFormat(f.format) {
		return usageErr("--format %q: valid are %s", f.format, strings.Join(report.Formats, ", "))
	}
	for _, o := range f.outs {
		if formatFor(o) == "" {
			return usageErr("--out %s: cannot tell the format from the extension; use .json, .md, .xml (JUnit) or .txt", o)
		}
	}
	if f.timeout < 100*time.Millisecond || f.timeout > time.Minute {
		return usageErr("--timeout %s: valid are 100ms to 1m", f.timeout)
	}
	return nil
}

// checkTopology runs the check on a parsed topology and writes the result.
func checkTopology(cmd *cobra.Command, f checkFlags, top *topology.Topology) error {
	if f.dryRun {
		return printPlan(top, f)
	}
	if err := needPrivileges(top); err != nil {
		return &exitError{code: exitInconclusive, err: err}
	}
	transport.Defaults.SSH = f.ssh
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	progress := func(string) {}
	t0 := time.Now()
	switch {
	case f.verbose:
		progress = func(s string) { fmt.Fprintf(os.Stderr, "%6.3fs %s\n", time.Since(t0).Seconds(), s) }
	case !f.quiet && isTerminal(os.Stderr):
		progress = func(s string) { fmt.Fprintf(os.Stderr, "\x1b[2K\r· %s", s) }
	}
	// An upload over a slow link takes minutes: said, host by host.
	transport.Defaults.SSH.Progress = progress
	var events func(checks.Event)
	if f.verbose {
		// Each step's outcome as it lands, for a CI log that shows where
		// a slow or failing check was; the report gives the final word.
		events = func(e checks.Event) {
			if e.State.Landed() && !e.Final {
				what := e.Step + " " + e.Host
				if e.Service != "" {
					what += " " + e.Service
				}
				fmt.Fprintf(os.Stderr, "%6.3fs   %s: %s, %s\n", time.Since(t0).Seconds(), what, e.State, e.Summary)
			}
		}
	}
	r, in := checks.Run(ctx, top, checks.Options{
		Timeout: f.timeout, MaxConnections: f.maxConnections, Static: f.static,
		PcapDir: f.pcapDir, Strict: f.strict, Progress: progress, Events: events, Version: version,
	})
	if !f.quiet && !f.verbose && isTerminal(os.Stderr) {
		fmt.Fprint(os.Stderr, "\x1b[2K\r")
	}
	if ctx.Err() != nil {
		return &exitError{code: exitInconclusive, err: errors.New("interrupted: agents stopped, nothing left running")}
	}
	color := f.format == "text" && !f.noColor && os.Getenv("NO_COLOR") == "" && isTerminal(os.Stdout)
	var out io.Writer = os.Stdout
	if f.quiet && f.format == "text" {
		fmt.Fprintf(out, "%s · %d findings\n", r.Verdict, len(r.Findings))
	} else if err := report.Write(out, f.format, r, color); err != nil {
		return err
	}
	if f.observations != "" {
		b, err := json.MarshalIndent(in, "", " ")
		if err == nil {
			err = os.WriteFile(f.observations, b, 0o600)
		}
		if err != nil {
			return &exitError{code: exitInconclusive, err: err}
		}
	}
	for _, o := range f.outs {
		if err := writeFile(o, r); err != nil {
			return &exitError{code: exitInconclusive, err: err}
		}
	}
	if code := r.ExitCode(); code != 0 {
		return &exitError{code: code, err: errors.New("")}
	}
	return nil
}

func validFormat(s string) bool {
	for _, f := range report.Formats {
		if s == f {
			return true
		}
	}
	return s == "md"
}

func formatFor(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		return "json"
	case ".md", ".markdown":
		return "markdown"
	case ".txt":
		return "text"
	case ".xml":
		return "junit"
	}
	return ""
}

func writeFile(path string, r *result.Result) error {
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := report.Write(fh, formatFor(path), r, false); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// needPrivileges says up front which capability a check needs instead of
// failing deep inside a probe.
func needPrivileges(top *topology.Topology) error {
	hosts := []string{top.Client.Host, top.Director.Host}
	for _, s := range top.Services {
		for _, r := range s.RealServers {
			hosts = append(hosts, r.Host)
		}
	}
	var need []string
	for _, h := range hosts {
		if strings.HasPrefix(h, "netns:") {
			need = []string{caps.SysAdmin, caps.NetAdmin, caps.NetRaw}
			break
		}
		if h == "local" {
			need = []string{caps.NetAdmin, caps.NetRaw}
		}
	}
	if miss := caps.Missing(need...); len(miss) > 0 {
		return fmt.Errorf("this check needs %s (entering namespaces, reading firewall rules, raw sockets for ping, traceroute and capture); run it as root (sudo)", strings.Join(miss, ", "))
	}
	return nil
}

// printPlan is --dry-run: what each host would see, so an operator can
// judge a check before pointing it at production.
func printPlan(top *topology.Topology, f checkFlags) error {
	plan := checks.DryRun(top, checks.Options{Timeout: f.timeout, MaxConnections: f.maxConnections, Static: f.static})
	if f.format == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(plan)
	}
	last := ""
	for _, p := range plan {
		if p.Host != last {
			fmt.Printf("\n%s (%s)\n", p.Host, p.Spec)
			last = p.Host
		}
		mark := " "
		if p.Traffic {
			mark = "*"
		}
		fmt.Printf("  %s %-48s %s\n", mark, p.What, p.Command)
	}
	fmt.Println("\n* sends packets; nothing else changes anything on the hosts")
	return nil
}
