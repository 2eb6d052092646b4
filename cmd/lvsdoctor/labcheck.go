package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/lvsdoctor/lvsdoctor/checks"
	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/lvs/lab"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/report"
	"github.com/spf13/cobra"
)

// labTopology is the topology of a running lab, parsed the way a file
// from `lab up -o` would be: the lab is checked through the same path as
// any cluster.
func labTopology(name string) (*topology.Topology, error) {
	st, err := lab.Load(name)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: fmt.Errorf("%w (start one with: sudo lvsdoctor lab up --name %s)", err, name)}
	}
	var b bytes.Buffer
	if err := st.WriteTopology(&b); err != nil {
		return nil, err
	}
	return topology.Parse("lab "+name, b.Bytes())
}

func newLabCheckCmd() *cobra.Command {
	var f checkFlags
	name := lab.DefaultName
	c := &cobra.Command{
		Use:   "check [--name N]",
		Short: "Run the check against the lab (same as check -f on its topology file)",
		Example: `  sudo lvsdoctor lab check
  sudo lvsdoctor lab check --name lvsd2 --format json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.validate(); err != nil {
				return err
			}
			top, err := labTopology(name)
			if err != nil {
				return err
			}
			return checkTopology(cmd, f, top)
		},
	}
	c.Flags().StringVar(&name, "name", name, "lab name")
	f.register(c)
	return c
}

func newLabDemoCmd() *cobra.Command {
	name := "lvsddemo"
	fault := "rs-wrong-gateway"
	c := &cobra.Command{
		Use:   "demo [--fault ID[@HOST]]",
		Short: "Build a lab, check it healthy, break it, check again, tear it down",
		Long: `demo shows the whole job on a throw-away lab: it builds the lab, runs the check
on the healthy cluster, injects a fault, runs the check again and removes the
lab. It exits 0 when the healthy lab checks healthy and the broken one names
exactly the injected fault.`,
		Example: `  sudo lvsdoctor lab demo
  sudo lvsdoctor lab demo --fault director-firewall-drops-replies`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := labPrivileges(); err != nil {
				return err
			}
			return runDemo(name, fault)
		},
	}
	c.Flags().StringVar(&name, "name", name, "lab name for the demo")
	c.Flags().StringVar(&fault, "fault", fault, "fault to inject (lab fault --list)")
	return c
}

func runDemo(name, fault string) error {
	ctx, stop := signalContext()
	defer stop()
	id, host := lab.ParseFaultSpec(fault)
	known := false
	for _, fi := range lab.List() {
		known = known || fi.ID == id
	}
	if !known {
		return usageErr("unknown fault %q (lvsdoctor lab fault --list)", id)
	}
	if lab.Exists(name) {
		return usageErr("a lab named %s exists already: lvsdoctor lab down --name %s", name, name)
	}
	color := os.Getenv("NO_COLOR") == "" && isTerminal(os.Stdout)
	say := func(format string, args ...any) { fmt.Printf("\n\x1b[1m==> "+format+"\x1b[0m\n", args...) }
	if !color {
		say = func(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }
	}
	say("sudo lvsdoctor lab up --name %s", name)
	t0 := time.Now()
	if _, err := lab.Up(ctx, lab.Options{Name: name}); err != nil {
		return err
	}
	defer func() {
		say("sudo lvsdoctor lab down --name %s", name)
		if err := lab.Down(name); err != nil {
			fmt.Fprintln(os.Stderr, "lab down:", err)
		} else {
			fmt.Println("removed every namespace, link and process of the lab")
		}
	}()
	fmt.Printf("lab %s up in %.2f s: client 203.0.113.10, director with VIP 203.0.113.100, rs1 and rs2 behind it\n", name, time.Since(t0).Seconds())
	top, err := labTopology(name)
	if err != nil {
		return err
	}
	run := func() *result.Result {
		r, _ := checks.Run(ctx, top, checks.Options{Version: version})
		report.Text(os.Stdout, r, color)
		return r
	}
	say("sudo lvsdoctor lab check --name %s        # the healthy lab", name)
	healthy := run()
	if ctx.Err() != nil {
		return &exitError{code: exitInconclusive, err: errors.New("interrupted")}
	}
	say("sudo lvsdoctor lab fault %s --name %s", fault, name)
	if err := lab.Inject(ctx, name, id, host, ""); err != nil {
		return err
	}
	say("sudo lvsdoctor lab check --name %s        # names the fault, the evidence and the fix", name)
	broken := run()
	if ctx.Err() != nil {
		return &exitError{code: exitInconclusive, err: errors.New("interrupted")}
	}
	var ids []string
	for _, f := range broken.Findings {
		if f.Severity == result.SevError {
			ids = append(ids, f.ID)
		}
	}
	if healthy.Verdict != result.Healthy || strings.Join(ids, ",") != id {
		return &exitError{code: exitFaulty, err: fmt.Errorf("demo did not go as expected: healthy lab %s, broken lab found %v, injected %s", healthy.Verdict, ids, id)}
	}
	return nil
}

func init() {
	labCmd.AddCommand(newLabCheckCmd(), newLabDemoCmd())
}
