package main

import (
	"context"
	"errors"
	"os"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/spf13/cobra"

	"github.com/lvsdoctor/lvsdoctor/checks"
	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/transport"
	"github.com/lvsdoctor/lvsdoctor/tui"
)

func newWizardCmd() *cobra.Command {
	var (
		file, save string
		noColor    bool
		timeout    time.Duration
		ssh        transport.SSHOptions
	)
	c := &cobra.Command{
		Use:   "wizard [-f TOPOLOGY]",
		Short: "Describe the cluster by answering questions, check it, and walk through the findings",
		Long: `wizard is the interactive way in. Without -f it asks for the director and how
to reach it, the virtual service, the real servers and the client, checking
every answer as it is typed, and saves the topology file. Then it runs the
check with live progress, a row per HOWTO step and host that shows a
spinner while the step runs and ok or FAIL as soon as it is known, and
lists the findings, most severe first; each opens to its evidence, its
journey drawn across client, director and real server, the HOWTO answer
and the remedy.

Keys: while asking, enter next and esc back a question; while checking, ↑↓
scroll the steps when they do not all fit; then ↑↓ select, enter open, esc
back, r re-run, m write the markdown report, q quit. Ctrl-C stops a running
check and closes its agents. The exit code is the check's:
0 healthy, 1 faulty, 3 inconclusive or no check.`,
		Example: `  sudo lvsdoctor wizard                 # build a topology by answering questions
  sudo lvsdoctor wizard -f lab.yaml     # check a topology file straight away`,
		Args: checkNoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var top *topology.Topology
			if file != "" {
				t, err := topology.Load(file)
				if err != nil {
					return &exitError{code: exitUsage, err: err}
				}
				top = t
			}
			transport.Defaults.SSH = ssh
			run := func(ctx context.Context, t *topology.Topology, progress func(string), step func(checks.Event)) (*result.Result, error) {
				if err := needPrivileges(t); err != nil {
					return nil, err
				}
				r, _ := checks.Run(ctx, t, checks.Options{Timeout: timeout, Progress: progress, Events: step, Version: version})
				if ctx.Err() != nil {
					return nil, errors.New("interrupted: agents stopped")
				}
				return r, nil
			}
			m := tui.New(tui.Config{
				Topology: top, SavePath: save, Run: run,
				NoColor: noColor || os.Getenv("NO_COLOR") != "",
			})
			_, err := tea.NewProgram(m, tea.WithContext(cmd.Context())).Run()
			m.Shutdown()
			if err != nil && !errors.Is(err, tea.ErrInterrupted) && !errors.Is(err, tea.ErrProgramKilled) {
				return err
			}
			if r := m.Result(); r != nil {
				if code := r.ExitCode(); code != 0 {
					return &exitError{code: code, err: errors.New("")}
				}
				return nil
			}
			return &exitError{code: exitInconclusive, err: errors.New("")}
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "topology file to check (skips the questions)")
	c.Flags().StringVarP(&save, "save", "o", "lvsdoctor.yaml", "default file name for the topology the questions build")
	c.Flags().BoolVar(&noColor, "no-color", false, "no colour (also when NO_COLOR is set)")
	c.Flags().DurationVar(&timeout, "timeout", time.Second, "how long a probe waits for an answer that may never come")
	c.Flags().StringVar(&ssh.ConfigFile, "ssh-config", "", "ssh_config file for ssh hosts (default ~/.ssh/config, then /etc/ssh/ssh_config)")
	c.Flags().BoolVar(&ssh.AcceptNewHostKeys, "accept-new-host-keys", false, "record the host keys of SSH hosts not yet in known_hosts; a changed key is always refused")
	c.Flags().DurationVar(&ssh.Timeout, "ssh-timeout", 10*time.Second, "bound on every remote step over SSH (connect, handshake, upload)")
	return c
}

func init() { rootCmd.AddCommand(newWizardCmd()) }
