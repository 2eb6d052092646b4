package main

import (
	"os"

	"github.com/lvsdoctor/lvsdoctor/probes/agent"
	"github.com/lvsdoctor/lvsdoctor/probes/agent/ops"
	"github.com/spf13/cobra"
)

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:    "agent",
		Short:  "Serve probes on stdin/stdout (started by lvsdoctor check on each host)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, done := ops.Table()
			defer done()
			return agent.Serve(cmd.Context(), os.Stdin, os.Stdout, t)
		},
	})
}
