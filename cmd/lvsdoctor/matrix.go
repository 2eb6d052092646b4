package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lvsdoctor/lvsdoctor/lvs/lab/matrix"
	"github.com/spf13/cobra"
)

func newLabMatrixCmd() *cobra.Command {
	var (
		format   string
		parallel int
		only     []string
		datapath string
		timeout  time.Duration
	)
	c := &cobra.Command{
		Use:   "matrix [--parallel N] [--fault ID]... [--datapath nft|nft-stateless|ipvs] [--format text|json]",
		Short: "Every fault: build a lab, inject, check, tear down; print fault × findings",
		Long: `matrix runs the whole fault catalogue against the check: for the healthy lab
and for every fault and variant it builds a fresh lab (labs lvsdm0, lvsdm1..
run side by side), injects the fault, runs the check and removes the lab.

A row is exact when the check names the injected fault and no other error
finding stands beside it; the healthy lab must be clean. matrix exits 1 when a
fault is missed or misnamed, when an extra error finding appears, or when the
healthy lab reports anything.`,
		Example: `  sudo lvsdoctor lab matrix
  sudo lvsdoctor lab matrix --fault rs-wrong-gateway --fault director-no-forwarding
  sudo lvsdoctor lab matrix --format json > matrix.json
  sudo lvsdoctor lab matrix --datapath ipvs   # on a kernel with IPVS`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" {
				return usageErr("--format %q: valid are text, json", format)
			}
			if parallel < 1 || parallel > 16 {
				return usageErr("--parallel %d: valid are 1..16", parallel)
			}
			if err := labPrivileges(); err != nil {
				return err
			}
			switch datapath {
			case "", "nft", "nft-stateless", "ipvs":
			default:
				return usageErr("--datapath %q: valid are nft, nft-stateless, ipvs (default: each fault's own lab)", datapath)
			}
			cases := matrix.CasesFor(datapath)
			for i := range cases {
				cases[i].Timeout = timeout
			}
			if len(only) > 0 {
				var keep []matrix.Case
				for _, c := range cases {
					for _, o := range only {
						if c.ID == o || (o == "healthy" && c.ID == "") {
							keep = append(keep, c)
						}
					}
				}
				if len(keep) == 0 {
					return usageErr("--fault %s: no such fault (lvsdoctor lab fault --list)", strings.Join(only, ", "))
				}
				cases = keep
			}
			ctx, stop := signalContext()
			defer stop()
			start := time.Now()
			tty := isTerminal(os.Stderr)
			done := 0
			rows := matrix.Run(ctx, cases, parallel, func(r matrix.Row) {
				done++
				if tty {
					fmt.Fprintf(os.Stderr, "\x1b[2K\r· %d/%d %s: %s", done, len(cases), r.Case, r.Outcome)
				}
			})
			if tty {
				fmt.Fprint(os.Stderr, "\x1b[2K\r")
			}
			if ctx.Err() != nil {
				return &exitError{code: exitInconclusive, err: errors.New("interrupted: labs removed")}
			}
			bad := 0
			for _, r := range rows {
				if !r.OK() {
					bad++
				}
			}
			took := time.Since(start)
			if format == "json" {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(struct {
					Rows       []matrix.Row `json:"rows"`
					Failed     int          `json:"failed"`
					DurationMS int64        `json:"duration_ms"`
				}{rows, bad, took.Milliseconds()}); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "FAULT\tVARIANT\tERRORS\tWARNINGS\tCHECK\tOUTCOME")
				for _, r := range rows {
					id := r.Case.ID
					if id == "" {
						id = "(healthy)"
					}
					out := r.Outcome
					if r.Detail != "" {
						out += ": " + r.Detail
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1fs\t%s\n", id, dash(r.Case.Variant), dash(strings.Join(r.Errors, ",")),
						dash(strings.Join(r.Warnings, ",")), float64(r.DurationMS)/1000, out)
				}
				tw.Flush()
				fmt.Printf("\n%d cases, %d exact or clean, %d failed · %.1f s with %d labs at once\n", len(rows), len(rows)-bad, bad, took.Seconds(), parallel)
			}
			if bad > 0 {
				return &exitError{code: exitFaulty, err: fmt.Errorf("%d of %d cases not diagnosed exactly", bad, len(rows))}
			}
			return nil
		},
	}
	c.Flags().StringVar(&format, "format", "text", "text or json")
	c.Flags().IntVar(&parallel, "parallel", runtime.NumCPU(), "labs at once")
	c.Flags().StringArrayVar(&only, "fault", nil, "only this fault (repeatable; 'healthy' for the healthy lab)")
	c.Flags().DurationVar(&timeout, "timeout", 0, "the check's probe timeout (default the check's own, 1s); more on slow machines such as an emulated VM")
	c.Flags().StringVar(&datapath, "datapath", "", "every lab on this datapath: nft, nft-stateless or ipvs (kernel IPVS; adds the IPVS-only faults); default each fault's own")
	return c
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func init() { labCmd.AddCommand(newLabMatrixCmd()) }
