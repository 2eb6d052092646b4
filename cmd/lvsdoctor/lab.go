package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/lvsdoctor/lvsdoctor/lvs/lab"
	"github.com/spf13/cobra"
)

// The lab commands; "lab check" and "lab demo" are added by the checker.
var labCmd = &cobra.Command{
	Use:   "lab",
	Short: "An LVS-NAT lab in network namespaces that reproduces every known fault",
	Long: `The lab builds the LVS-NAT cluster of the HOWTO in network namespaces on this
machine (client, director, real servers, a second router, and a switch
namespace with the public and private LANs), with nftables NAT as the
director's datapath. Nothing is added to the root namespace. It needs root:
CAP_SYS_ADMIN, CAP_NET_ADMIN and CAP_NET_RAW.`,
	Example: `  sudo lvsdoctor lab up
  sudo lvsdoctor lab fault rs-wrong-gateway@rs2
  sudo lvsdoctor lab exec client -- curl -s http://203.0.113.100/
  sudo lvsdoctor lab fault --clear
  sudo lvsdoctor lab down`,
}

func labPrivileges() error {
	if err := lab.CheckPrivileges(); err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	return nil
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErr("%s takes no arguments (got %q)\nsee '%s --help'", cmd.CommandPath(), strings.Join(args, " "), cmd.CommandPath())
	}
	return nil
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func newLabUpCmd() *cobra.Command {
	var o lab.Options
	var out string
	c := &cobra.Command{
		Use:   "up [--name N] [--realservers K] [--topology nat|flat|client-on-director] [--datapath auto|nft|nft-stateless|ipvs] [-o FILE]",
		Short: "Build the lab and write its topology file",
		Long: `Build the lab: namespaces NAME-client, NAME-director, NAME-rs1..K, NAME-router
and NAME-sw; client 203.0.113.10, director 203.0.113.1 with the VIP
203.0.113.100 and the DIP 198.18.0.1, real servers 198.18.0.2 and up, services
tcp 203.0.113.100:80 (HTTP), udp 203.0.113.100:53 (UDP echo),
tcp 203.0.113.100:21 (FTP with PASV, through the director's FTP helper) and
firewall mark 1 (tcp 203.0.113.100:8080 marked by a rule), round robin.
Then wait until the client reaches the VIP, and write the topology file.
Ctrl-C or an error removes whatever was built.

--topology flat builds one-arm LVS-NAT: client, director and real servers on
one LAN, the director with one interface holding 203.0.113.1, the VIP and the
DIP. client-on-director writes the director itself as the client.
--datapath nft-stateless balances without conntrack (notrack, a hash of the
client's address and port, addresses rewritten in place), like IPVS; it has
no FTP service.`,
		Example: `  sudo lvsdoctor lab up
  sudo lvsdoctor lab up --name lvsd2 --realservers 5 -o lab2.yaml
  sudo lvsdoctor lab up --realservers 3 --weights 1,2,3   # wrr
  sudo lvsdoctor lab up --topology flat --datapath nft-stateless`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.RealServers < 1 {
				return usageErr("--realservers %d: must be between 1 and %d", o.RealServers, lab.MaxRealServers)
			}
			if err := o.Normalize(); err != nil {
				return usageErr("%v", err)
			}
			if err := labPrivileges(); err != nil {
				return err
			}
			if lab.Exists(o.Name) {
				return usageErr("lab %s already exists: run 'lvsdoctor lab down --name %s' first, or pick another --name", o.Name, o.Name)
			}
			ctx, cancel := signalContext()
			defer cancel()
			o.Progress = func(s string) { fmt.Fprintln(os.Stderr, "lab:", s) }
			st, err := lab.Up(ctx, o)
			if err != nil {
				if ctx.Err() != nil {
					return &exitError{code: 130, err: fmt.Errorf("interrupted; removed what was built (%v)", err)}
				}
				return err
			}
			if err := st.WriteTopologyFile(out); err != nil {
				return fmt.Errorf("lab is up, but writing %s failed: %w", out, err)
			}
			w := cmd.OutOrStdout()
			_, cip := st.TopologyClient()
			fmt.Fprintf(w, "lab %s is up: client %s, director 203.0.113.1 (VIP %s, DIP %s), %d real servers, topology %s, datapath %s\n",
				st.Name, cip, lab.VIP, lab.DIP, st.Options.RealServers, st.Options.Topology, st.Options.Datapath)
			for _, s := range st.Services {
				fmt.Fprintf(w, "  service %s %s -> %d real servers\n", s, s.Scheduler, len(s.RealServers))
			}
			fmt.Fprintf(w, "topology file: %s\n", out)
			if ss := st.SSH; ss != nil {
				fmt.Fprintf(w, "management network %s in namespace %s (bastion %s); sshd on every host\n", lab.MgmtNet, ss.Mgmt, ss.Addrs[lab.RoleBastion])
				fmt.Fprintf(w, "  ssh topology: %s (through the bastion), %s (direct)", ss.Topology, ss.Direct)
				if ss.SudoTopo != "" {
					fmt.Fprintf(w, ", %s (%s, sudo -n)", ss.SudoTopo, ss.User)
				}
				fmt.Fprintf(w, "\n  ssh_config %s, known_hosts %s, key %s\n", ss.Config, ss.KnownHosts, ss.Key)
				fmt.Fprintf(w, "  check over SSH from the management namespace:\n    sudo lvsdoctor lab exec%s mgmt -- lvsdoctor check -f %s --ssh-config %s\n", nameFlagFor(st.Name), ss.Topology, ss.Config)
			}
			nameFlag := ""
			if st.Name != lab.DefaultName {
				nameFlag = " --name " + st.Name
			}
			fmt.Fprintf(w, "next: sudo lvsdoctor check -f %s\n      sudo lvsdoctor lab fault --list%s\n", out, nameFlag)
			return nil
		},
	}
	c.Flags().StringVar(&o.Name, "name", lab.DefaultName, "lab name (must start with \"lvsd\"); namespaces are NAME-ROLE")
	c.Flags().IntVar(&o.RealServers, "realservers", 2, fmt.Sprintf("number of real servers (1-%d)", lab.MaxRealServers))
	c.Flags().StringVar(&o.Datapath, "datapath", "auto", "director datapath: auto (ipvs where the kernel has it, else nft)|nft|nft-stateless|ipvs")
	c.Flags().StringVar(&o.Topology, "topology", "nat", "lab topology: nat|flat (one-arm)|client-on-director")
	c.Flags().IntSliceVar(&o.Weights, "weights", nil, "one weight per real server; makes the scheduler wrr")
	c.Flags().StringVarP(&out, "output", "o", "lab.yaml", "where to write the topology file")
	c.Flags().BoolVar(&o.SSH, "ssh", false, "also build a management network (namespace NAME-mgmt, a bastion) with an OpenSSH sshd in every host, and write topologies with SSH hosts")
	c.Flags().StringVar(&o.SSHUser, "ssh-user", "", "with --ssh: an existing non-root user that may log in with the lab's key and gets a NOPASSWD sudoers drop-in (removed at lab down)")
	return c
}

func nameFlagFor(name string) string {
	if name == lab.DefaultName {
		return ""
	}
	return " --name " + name
}

func newLabDownCmd() *cobra.Command {
	var name string
	var all bool
	c := &cobra.Command{
		Use:   "down [--name N] | --all",
		Short: "Remove the lab: its processes, namespaces and state",
		Long: `Remove a lab: kill its service processes (and any process left inside its
namespaces), delete the namespaces and the state in /run/lvsdoctor/labs.
--all removes every lab and every namespace whose name starts with "lvsd".
Running it twice is harmless.`,
		Example: `  sudo lvsdoctor lab down
  sudo lvsdoctor lab down --name lvsd2
  sudo lvsdoctor lab down --all`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if all && cmd.Flags().Changed("name") {
				return usageErr("give --name or --all, not both")
			}
			if !all {
				if err := lab.ValidateName(name); err != nil {
					return usageErr("%v", err)
				}
			}
			if err := labPrivileges(); err != nil {
				return err
			}
			start := time.Now()
			if all {
				if err := lab.DownAll(); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed every lab (%.1fs)\n", time.Since(start).Seconds())
				return nil
			}
			existed := lab.Exists(name)
			if err := lab.Down(name); err != nil {
				return err
			}
			if existed {
				fmt.Fprintf(cmd.OutOrStdout(), "lab %s removed (%.1fs)\n", name, time.Since(start).Seconds())
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "lab %s: nothing to remove\n", name)
			}
			return nil
		},
	}
	c.Flags().StringVar(&name, "name", lab.DefaultName, "lab name")
	c.Flags().BoolVar(&all, "all", false, "remove every lab and every namespace named lvsd*")
	return c
}

func newLabFaultCmd() *cobra.Command {
	var name, variant string
	var clear, list bool
	c := &cobra.Command{
		Use:   "fault ID[@HOST] [--variant V] | --clear | --list",
		Short: "Inject a fault of FAULTS.md into the lab, or restore the healthy lab",
		Long: `Inject a fault by its id (FAULTS.md). Faults add up: inject two to have both.
rs-* faults go to rs1 and director-* faults to the director unless @HOST
names another (e.g. rs-no-listener@rs2). --clear restores the healthy lab;
--list shows the ids, variants and default hosts.`,
		Example: `  sudo lvsdoctor lab fault --list
  sudo lvsdoctor lab fault rs-wrong-gateway
  sudo lvsdoctor lab fault rs-wrong-gateway@rs2 --variant router-drops
  sudo lvsdoctor lab fault director-rpfilter-requests --variant warm
  sudo lvsdoctor lab fault --clear`,
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			modes := 0
			for _, b := range []bool{clear, list, len(args) > 0} {
				if b {
					modes++
				}
			}
			if modes != 1 || len(args) > 1 {
				return usageErr("give one fault ID[@HOST], or --clear, or --list\nsee '%s --help'", cmd.CommandPath())
			}
			if list {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tDEFAULT HOST\tVARIANTS (first is default)\tWHAT")
				for _, f := range lab.List() {
					v := strings.Join(f.Variants, ", ")
					if v == "" {
						v = "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.ID, f.DefaultHost, v, f.Summary)
				}
				return tw.Flush()
			}
			if err := lab.ValidateName(name); err != nil {
				return usageErr("%v", err)
			}
			if err := labPrivileges(); err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			if clear {
				start := time.Now()
				if err := lab.Clear(ctx, name); err != nil {
					return err
				}
				fmt.Fprintf(w, "lab %s is healthy again (%.1fs)\n", name, time.Since(start).Seconds())
				return nil
			}
			id, host := lab.ParseFaultSpec(args[0])
			if err := lab.Inject(ctx, name, id, host, variant); err != nil {
				if errors.Is(err, lab.ErrBadFault) || errors.Is(err, lab.ErrNoLab) {
					return usageErr("%v", err)
				}
				return err
			}
			st, _ := lab.Load(name)
			if st != nil && len(st.Faults) > 0 {
				f := st.Faults[len(st.Faults)-1]
				v := ""
				if f.Variant != "" {
					v = " (variant " + f.Variant + ")"
				}
				fmt.Fprintf(w, "injected %s on %s%s; %d fault(s) now in lab %s\n", f.ID, f.Host, v, len(st.Faults), name)
			}
			return nil
		},
	}
	c.Flags().StringVar(&name, "name", lab.DefaultName, "lab name")
	c.Flags().StringVar(&variant, "variant", "", "fault variant (see --list)")
	c.Flags().BoolVar(&clear, "clear", false, "restore the healthy lab")
	c.Flags().BoolVar(&list, "list", false, "list the faults the lab can inject")
	return c
}

func newLabExecCmd() *cobra.Command {
	var name string
	c := &cobra.Command{
		Use:   "exec [HOST] -- CMD [ARGS...]",
		Short: "Run a command inside a lab namespace",
		Long: `Run a command inside the network namespace of a lab host: a role (client,
director, router, sw, rs1...), mgmt or bastion (lab up --ssh), or a full
namespace name (lvsd-rs1). Without HOST: the management namespace. Its exit
code becomes lvsdoctor's.`,
		Example: `  sudo lvsdoctor lab exec client -- curl -s http://203.0.113.100/
  sudo lvsdoctor lab exec director -- nft list ruleset
  sudo lvsdoctor lab exec lvsd-rs1 -- ip route
  sudo lvsdoctor lab exec mgmt -- lvsdoctor check -f /run/lvsdoctor/labs/lvsd/ssh.yaml --ssh-config /run/lvsdoctor/labs/lvsd/ssh/ssh_config`,
		RunE: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			if dash == 0 && len(args) > 0 {
				// No host: the management namespace (lab up --ssh).
				args = append([]string{lab.RoleMgmt}, args...)
				dash = 1
			}
			if len(args) < 2 || dash != 1 {
				return usageErr("usage: lvsdoctor lab exec [HOST] -- CMD [ARGS...]\nsee '%s --help'", cmd.CommandPath())
			}
			if err := labPrivileges(); err != nil {
				return err
			}
			host, argv := args[0], args[1:]
			ns := host
			if st, err := lab.Load(name); err == nil {
				n, err := st.Namespace(host)
				if err != nil {
					return usageErr("%v", err)
				}
				ns = n
			} else if _, serr := os.Stat(lab.NetnsDir + "/" + host); serr != nil {
				return usageErr("%v", err)
			}
			signal.Ignore(os.Interrupt) // the command gets the terminal's Ctrl-C
			code, err := lab.Exec(ns, argv, os.Stdin, os.Stdout, os.Stderr)
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitError{code: code, err: errors.New("")}
			}
			return nil
		},
	}
	c.Flags().StringVar(&name, "name", lab.DefaultName, "lab name")
	return c
}

func newLabServeCmd() *cobra.Command {
	var o lab.ServeOptions
	c := &cobra.Command{
		Use:    "serve --http ADDR:PORT | --udp-echo ADDR:PORT | --ftp ADDR:PORT [--server-name NAME]",
		Short:  "Run one real-server service (started by the lab inside a real server's namespace)",
		Hidden: true,
		Example: `  lvsdoctor lab serve --http 198.18.0.2:80 --server-name rs1
  lvsdoctor lab serve --udp-echo 198.18.0.2:53
  lvsdoctor lab serve --ftp 198.18.0.2:21 --server-name rs1`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			n := 0
			for _, a := range []string{o.HTTP, o.UDPEcho, o.FTP} {
				if a != "" {
					n++
				}
			}
			if n != 1 {
				return usageErr("give exactly one of --http ADDR:PORT, --udp-echo ADDR:PORT or --ftp ADDR:PORT")
			}
			ctx, cancel := signalContext()
			defer cancel()
			return lab.Serve(ctx, o)
		},
	}
	c.Flags().StringVar(&o.HTTP, "http", "", "serve HTTP on ADDR:PORT, answering NAME")
	c.Flags().StringVar(&o.UDPEcho, "udp-echo", "", "echo UDP datagrams on ADDR:PORT")
	c.Flags().StringVar(&o.FTP, "ftp", "", "serve FTP (PASV) on ADDR:PORT")
	c.Flags().StringVar(&o.Name, "server-name", "", "the name HTTP answers with (rs1)")
	return c
}

func init() {
	labCmd.AddCommand(newLabUpCmd(), newLabDownCmd(), newLabFaultCmd(), newLabExecCmd(), newLabServeCmd())
	rootCmd.AddCommand(labCmd)
}
