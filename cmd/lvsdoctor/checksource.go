package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/lvsdoctor/lvsdoctor/lvs/discover"
	"github.com/lvsdoctor/lvsdoctor/lvs/keepalived"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/agent"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
	"github.com/lvsdoctor/lvsdoctor/probes/transport"
)

// sourceFlags are the other ways than -f to say what to check: the
// services of keepalived.conf, or those of the director's own table, with
// the hosts given on the command line.
type sourceFlags struct {
	keepalived string
	director   string
	client     string
	clientAddr string
	hosts      string
}

func (s *sourceFlags) given() bool { return s.keepalived != "" || s.director != "" }

// topology builds the topology the flags describe. Every real server
// needs a host from --hosts: a check cannot reach one it was not told how
// to reach, and guessing would check the wrong machine.
func (s *sourceFlags) topology(ctx context.Context) (*topology.Topology, error) {
	if s.director == "" {
		return nil, usageErr("--keepalived needs --director HOST: the host keepalived runs on, whose table is compared with the file")
	}
	if s.client == "" {
		return nil, usageErr("give --client HOST: the host that opens the test connections to the VIPs (netns:NAME, ssh://user@host, an ssh_config alias, local)")
	}
	for flag, h := range map[string]string{"--director": s.director, "--client": s.client} {
		if err := topology.ValidHost(h); err != nil {
			return nil, usageErr("%s: %v", flag, err)
		}
	}
	if s.clientAddr != "" {
		if _, err := netip.ParseAddr(s.clientAddr); err != nil {
			return nil, usageErr("--client-address %q: want the client's IPv4 address (CIP)", s.clientAddr)
		}
	}
	hosts := map[string]string{}
	if s.hosts != "" {
		b, err := os.ReadFile(s.hosts)
		if err != nil {
			return nil, usageErr("--hosts: %v", err)
		}
		if hosts, err = discover.ParseHosts(s.hosts, string(b)); err != nil {
			return nil, usageErr("%v", err)
		}
	}
	var svcs []topology.Service
	var src *topology.Source
	if s.keepalived != "" {
		cfg, err := keepalived.Load(s.keepalived)
		if err != nil {
			return nil, &exitError{code: exitUsage, err: err}
		}
		for _, w := range cfg.Warnings {
			fmt.Fprintln(os.Stderr, "lvsdoctor: warning:", w)
		}
		svcs = cfg.Services()
		if len(svcs) == 0 {
			return nil, usageErr("%s: no virtual_server block: nothing to check", s.keepalived)
		}
		if err := s.markedTraffic(ctx, svcs); err != nil {
			return nil, err
		}
		src = &topology.Source{Kind: "keepalived", File: s.keepalived, Complete: true, RemovedOnFailure: cfg.RemovedOnFailure()}
	} else {
		var err error
		if svcs, err = tableServices(ctx, s.director); err != nil {
			return nil, err
		}
		src = &topology.Source{Kind: "table", Complete: true}
	}
	var missing []string
	for i := range svcs {
		for j := range svcs[i].RealServers {
			r := &svcs[i].RealServers[j]
			ap, err := netip.ParseAddrPort(r.Address)
			if err != nil {
				continue
			}
			if r.Host = hosts[ap.Addr().String()]; r.Host == "" {
				missing = append(missing, ap.Addr().String())
			}
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		missing = compactStrings(missing)
		where := "in a host map given with --hosts FILE"
		if s.hosts != "" {
			where = "in " + s.hosts
		}
		return nil, usageErr("no host for real server %s: say how to reach each %s, one line each: \"%s ssh://root@web1\" (or netns:NAME, an ssh_config alias)",
			strings.Join(missing, ", "), where, missing[0])
	}
	name := "(topology from " + s.keepalived + ")"
	if s.keepalived == "" {
		name = "(topology from " + s.director + "'s table)"
	}
	top, err := topology.Parse(name, []byte(discover.Write(s.director, s.client, s.clientAddr, svcs)))
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	top.Source = src
	return top, nil
}

// markedTraffic gives the firewall-mark services of keepalived.conf, which
// name only their mark, the VIP and ports of the director's marking rules,
// so that the check can send them test traffic.
func (s *sourceFlags) markedTraffic(ctx context.Context, svcs []topology.Service) error {
	var f *obs.Facts
	for i := range svcs {
		if svcs[i].Proto != "fwmark" || svcs[i].VIP != "" {
			continue
		}
		if f == nil {
			var err error
			if f, err = directorFacts(ctx, s.director); err != nil {
				return err
			}
		}
		svcs[i].VIP, svcs[i].Ports = discover.MarkedTraffic(f, svcs[i].Mark)
	}
	return nil
}

// directorFacts reads the director's static picture, before the check.
func directorFacts(ctx context.Context, director string) (*obs.Facts, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := transport.Dial(ctx, director)
	if err != nil {
		return nil, &exitError{code: exitInconclusive, err: err}
	}
	defer conn.Close()
	var f obs.Facts
	if err := conn.Call(ctx, agent.OpFacts, obs.FactsArgs{SkipConntrack: true, SkipListeners: true}, &f); err != nil {
		return nil, &exitError{code: exitInconclusive, err: fmt.Errorf("%s: %w", director, err)}
	}
	return &f, nil
}

// tableServices reads the services the director runs (check --director).
func tableServices(ctx context.Context, director string) ([]topology.Service, error) {
	f, err := directorFacts(ctx, director)
	if err != nil {
		return nil, err
	}
	svcs, err := discover.Services(f, nil)
	if err != nil {
		return nil, &exitError{code: exitInconclusive, err: fmt.Errorf("%s: %w", director, err)}
	}
	return svcs, nil
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
