// Package transport reaches a host and starts the lvsdoctor agent on it:
// `netns:NAME` re-executes lvsdoctor inside that network namespace,
// `local` runs it beside the controller. Both hand back the same
// agent.Client, which the SSH transport will give too.
package transport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/lvsdoctor/lvsdoctor/probes/agent"
	"github.com/vishvananda/netns"
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
		return c, c.hello(ctx)
	}
	bin, err := AgentBinary()
	if err != nil {
		return nil, &UnreachableError{spec, err}
	}
	cmd := exec.Command(bin, "agent")
	cmd.Stderr = os.Stderr
	// The agent dies with the controller even if stdin is somehow kept
	// open: nothing may be left running on a host.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, &UnreachableError{spec, err}
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, &UnreachableError{spec, err}
	}
	switch {
	case spec == "local":
		err = cmd.Start()
	case strings.HasPrefix(spec, "netns:"):
		err = startInNetns(strings.TrimPrefix(spec, "netns:"), cmd)
	default:
		err = fmt.Errorf("unknown host form %q", spec)
	}
	if err != nil {
		return nil, &UnreachableError{spec, err}
	}
	c := &Conn{Client: agent.NewClient(stdin, stdout), Spec: spec, cmd: cmd}
	if err := c.hello(ctx); err != nil {
		return nil, err
	}
	return c, nil
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
	if c.Hello.Version != agent.Version {
		c.Close()
		return &UnreachableError{c.Spec, fmt.Errorf("agent speaks protocol %d, this lvsdoctor %d: use the same lvsdoctor on both sides", c.Hello.Version, agent.Version)}
	}
	return nil
}

// startInNetns starts cmd from a thread switched into the namespace: a
// child inherits its parent thread's namespace, so the agent runs there
// without `ip netns exec` and without touching this process's namespace.
func startInNetns(name string, cmd *exec.Cmd) error {
	target, err := netns.GetFromName(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("network namespace %q does not exist (ip netns list)", name)
		}
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("network namespace %q: permission denied (needs CAP_SYS_ADMIN)", name)
		}
		return fmt.Errorf("network namespace %q: %w", name, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering network namespace %q: %w (needs CAP_SYS_ADMIN)", name, err)
			return
		}
		err = cmd.Start()
		if netns.Set(orig) == nil {
			// Only a thread back in its own namespace may serve other
			// goroutines; a failed one stays locked and dies with this one.
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// Close ends the agent: EOF on its stdin makes it stop its probes and exit;
// one that does not within a second is killed.
func (c *Conn) Close() error {
	c.Client.Close()
	if c.closer != nil {
		return c.closer()
	}
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(time.Second):
		_ = c.cmd.Process.Kill()
		err = <-done
	}
	// The benchmark reads the agents' peak memory from here.
	if os.Getenv("LVSDOCTOR_STATS") != "" && c.cmd.ProcessState != nil {
		if ru, ok := c.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			fmt.Fprintf(os.Stderr, "lvsdoctor-stats agent %s maxrss_kb %d utime_ms %d stime_ms %d\n", c.Spec, ru.Maxrss, ru.Utime.Nano()/1e6, ru.Stime.Nano()/1e6)
		}
	}
	return err
}
