package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/report"
	"github.com/spf13/cobra"
)

func newReportCmd() *cobra.Command {
	format := "markdown"
	c := &cobra.Command{
		Use:   "report RESULT.json [--format markdown|html|text|junit|json]",
		Short: "Render a saved result (check --format json) again, in another format",
		Example: `  sudo lvsdoctor check -f cluster.yaml --out result.json
  lvsdoctor report result.json > incident.md
  lvsdoctor report result.json --format html > incident.html`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr("report takes one saved result: lvsdoctor report RESULT.json")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return usageErr("%v", err)
			}
			var r result.Result
			if err := json.Unmarshal(b, &r); err != nil {
				return usageErr("%s: not a lvsdoctor result: %v", args[0], err)
			}
			if r.Schema != result.Schema {
				return usageErr("%s: schema %q, this lvsdoctor reads %q", args[0], r.Schema, result.Schema)
			}
			if format == "text" {
				return report.Text(os.Stdout, &r, false)
			}
			if err := report.Write(os.Stdout, format, &r, false); err != nil {
				return usageErr("%v", err)
			}
			return nil
		},
	}
	c.Flags().StringVar(&format, "format", format, fmt.Sprintf("one of %v", append(report.Formats, "html")))
	return c
}

func init() { rootCmd.AddCommand(newReportCmd()) }
