package main

import (
	"fmt"
	"os"

	"github.com/lvsdoctor/lvsdoctor/lvs/discover"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/spf13/cobra"
)

func newDiscoverCmd() *cobra.Command {
	var director, hostsFile, client, clientAddr, out string
	c := &cobra.Command{
		Use:   "discover --director HOST [--hosts FILE] [--client HOST --client-address CIP] [-o FILE]",
		Short: "Write a topology file from the services the director really runs",
		Long: `discover reads the director's balancing table (kernel IPVS, or the DNAT rules
of an nftables director) and writes a topology file with its virtual services
and real servers. How to reach each real server cannot be read from the
table: give a host map (--hosts, lines "RIP HOST"), or fill in the lines
marked FILL-IN; check refuses the file until they are.`,
		Example: `  sudo lvsdoctor discover --director netns:lvsd-director -o cluster.yaml
  lvsdoctor discover --director root@lb1 --hosts rips.txt --client ops@bastion -o cluster.yaml
  # rips.txt:
  #   10.0.0.11 root@web1
  #   10.0.0.12 root@web2`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if director == "" {
				return usageErr("discover needs --director HOST")
			}
			if err := topology.ValidHost(director); err != nil {
				return usageErr("--director: %v", err)
			}
			if client != "" {
				if err := topology.ValidHost(client); err != nil {
					return usageErr("--client: %v", err)
				}
			}
			hosts := map[string]string{}
			if hostsFile != "" {
				b, err := os.ReadFile(hostsFile)
				if err != nil {
					return usageErr("--hosts: %v", err)
				}
				if hosts, err = discover.ParseHosts(hostsFile, string(b)); err != nil {
					return usageErr("%v", err)
				}
			}
			f, err := directorFacts(cmd.Context(), director)
			if err != nil {
				return err
			}
			svcs, err := discover.Services(f, hosts)
			if err != nil {
				return &exitError{code: exitInconclusive, err: fmt.Errorf("%s: %w", director, err)}
			}
			text := discover.Write(director, client, clientAddr, svcs)
			if out == "" {
				fmt.Print(text)
				return nil
			}
			if err := os.WriteFile(out, []byte(text), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "wrote %s: %d services from %s's table\n", out, len(svcs), director)
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&director, "director", "", "the director: netns:NAME, ssh://[user@]host[:port], user@host, an ssh_config alias, or local")
	fl.StringVar(&hostsFile, "hosts", "", `host map: lines "RIP HOST" saying how to reach each real server`)
	fl.StringVar(&client, "client", "", "the host to run the test connections from")
	fl.StringVar(&clientAddr, "client-address", "", "the client's address (CIP)")
	fl.StringVarP(&out, "output", "o", "", "write the topology there instead of stdout")
	return c
}

func init() { rootCmd.AddCommand(newDiscoverCmd()) }
