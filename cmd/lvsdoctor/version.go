package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version (the SSH transport also runs it to check an uploaded agent)",
		Args:  noArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Printf("lvsdoctor %s %s/%s\n", version, runtime.GOOS, runtime.GOARCH)
		},
	})
}
