// Package transport reaches a host and starts the lvsdoctor agent on it:
// `netns:NAME` hosts share agent processes (up to eight namespaces each)
// that enter a host's namespace per request, `local` runs one beside the
// controller. Both hand back the same
// agent.Client, which the SSH transport will give too.
package transport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/lvsdoctor/lvsdoctor/probes/agent"
)

// AgentBinary is the lvsdoctor executable started as the agent. It is this
// process's own binary unless LVSDOCTOR_AGENT names another (tests, whose
// own binary is a test binary, point it at a built lvsdoctor).
func AgentBinary() (string, error) {
	if p := os.Getenv("LVSDOCTOR_AGENT"); p != "" {
		return p, nil
	}
	return os.Executable()
}

// Conn is a running agent on one host.
type Conn struct {
	*agent.Client
	Spec   string
	Hello  agent.Hello
	cmd    *exec.Cmd    // a local agent process (netns, local)
	closer func() error // a remote one (ssh)
	// remoteDir is where an uploaded agent lives on an SSH host ("" when
	// none was uploaded): tests check it is gone after Close.
	remoteDir string
}

// Options shape how hosts are reached.
type Options struct {
	SSH SSHOptions
	// NetnsPerHost gives every netns: host an agent process of its own
	// instead of one shared by all: one host's agent can then end alone,
	// as a remote host's can (the tests of a host lost mid-check).
	NetnsPerHost bool
	// Weight is a netns: host's share of the agent process it shares with
	// others, in real servers (0: 1): a director's or a client's agent
	// work takes several times a real server's memory.
	Weight int
}

// Defaults are the options Dial uses; the CLI sets them from its flags.
var Defaults Options

// UnreachableError says a host could not be reached or its agent not
// started; the check then marks that host inconclusive and goes on.
type UnreachableError struct {
	Spec string
	Err  error
}

func (e *UnreachableError) Error() string { return fmt.Sprintf("%s: %v", e.Spec, e.Err) }
func (e *UnreachableError) Unwrap() error { return e.Err }

// Dial starts an agent on the host named by spec with the Defaults.
func Dial(ctx context.Context, spec string) (*Conn, error) { return DialWith(ctx, spec, Defaults) }

// DialWith starts an agent on the host named by spec and says hello.
func DialWith(ctx context.Context, spec string, o Options) (*Conn, error) {
	if isSSH(spec) {
		c, err := dialSSH(ctx, spec, o.SSH)
		if err != nil {
			return nil, &UnreachableError{spec, err}
		}
		// dialSSH said hello already: its answer is how it knows the
		// agent runs.
		return c, c.speaksOurs()
	}
	var c *Conn
	var err error
	switch {
	case spec == "local":
		c, err = dialProcess(spec, "")
	case strings.HasPrefix(spec, "netns:") && o.NetnsPerHost:
		c, err = dialProcess(spec, strings.TrimPrefix(spec, "netns:"))
	case strings.HasPrefix(spec, "netns:"):
		c, err = dialNetns(spec, strings.TrimPrefix(spec, "netns:"), max(o.Weight, 1))
	default:
		err = fmt.Errorf("unknown host form %q", spec)
	}
	if err != nil {
		return nil, &UnreachableError{spec, err}
	}
	if err := c.hello(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// dialProcess starts an agent process of the host's own, beside the
// controller or in network namespace ns.
func dialProcess(spec, ns string) (*Conn, error) {
	cmd, cl, err := startAgent(ns, "agent")
	if err != nil {
		return nil, err
	}
	return &Conn{Client: cl, Spec: spec, cmd: cmd}, nil
}

// startAgent runs `lvsdoctor ARGS...` beside the controller, from a thread
// in network namespace ns, or (ns == isolated) in a new, empty namespace of
// its own, and returns its client.
func startAgent(ns string, args ...string) (*exec.Cmd, *agent.Client, error) {
	bin, err := AgentBinary()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	// The agent dies with the controller even if stdin is somehow kept
	// open: nothing may be left running on a host.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if ns == isolated {
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWNET
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	switch ns {
	case "":
		err = cmd.Start()
	case isolated:
		if err = cmd.Start(); errors.Is(err, os.ErrPermission) {
			err = fmt.Errorf("%w (a network namespace for the agent needs CAP_SYS_ADMIN)", err)
		}
	default:
		err = startInNetns(ns, cmd)
	}
	if err != nil {
		return nil, nil, err
	}
	return cmd, agent.NewClient(stdin, stdout), nil
}

// isSSH says spec names an SSH host: ssh://..., user@host, or a bare name
// (an ~/.ssh/config alias).
func isSSH(spec string) bool {
	return strings.HasPrefix(spec, "ssh://") || (spec != "local" && !strings.Contains(spec, ":"))
}

// hello checks the agent answers and speaks this protocol.
func (c *Conn) hello(ctx context.Context) error {
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.Call(hctx, agent.OpHello, struct{}{}, &c.Hello); err != nil {
		c.Close()
		return &UnreachableError{c.Spec, fmt.Errorf("agent did not answer: %w", err)}
	}
	return c.speaksOurs()
}

// speaksOurs checks the agent's hello names this protocol.
func (c *Conn) speaksOurs() error {
	if c.Hello.Version != agent.Version {
		c.Close()
		return &UnreachableError{c.Spec, fmt.Errorf("agent speaks protocol %d, this lvsdoctor %d: use the same lvsdoctor on both sides", c.Hello.Version, agent.Version)}
	}
	return nil
}

// Close ends the agent: EOF on its stdin makes it stop its probes and exit;
// one that does not within a second is killed.
func (c *Conn) Close() error {
	c.Client.Close()
	if c.closer != nil {
		return c.closer()
	}
	return waitAgent(c.cmd, c.Spec)
}

// waitAgent waits for an agent whose stdin was closed; one that does not
// exit within a second is killed.
func waitAgent(cmd *exec.Cmd, name string) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(time.Second):
		_ = cmd.Process.Kill()
		err = <-done
	}
	// The benchmark reads the agents' peak memory from here.
	if os.Getenv("LVSDOCTOR_STATS") != "" && cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			fmt.Fprintf(os.Stderr, "lvsdoctor-stats agent %s maxrss_kb %d utime_ms %d stime_ms %d\n", name, ru.Maxrss, ru.Utime.Nano()/1e6, ru.Stime.Nano()/1e6)
		}
	}
	return err
}
