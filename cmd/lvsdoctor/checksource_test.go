package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// check without a topology file: the services of keepalived.conf, or of
// the director's own table, with the hosts on the command line. On the
// lab's nftables director the table is its DNAT rules, and both must give
// a healthy check of the same cluster; a real server the host map does
// not cover is a usage error that names it.
func TestCheckServicesFromKeepalivedAndTable(t *testing.T) {
	name, _ := labUp(t)
	dir := t.TempDir()
	hosts := filepath.Join(dir, "rips.txt")
	write := func(path, text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(hosts, fmt.Sprintf("# the lab's real servers\n198.18.0.2 netns:%s-rs1\n198.18.0.3 netns:%s-rs2\n", name, name))
	conf := filepath.Join(dir, "keepalived.conf")
	write(conf, `global_defs {
    router_id LVS_LAB
}
virtual_server 203.0.113.100 80 {
    delay_loop 6
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 198.18.0.2 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 3
        }
    }
    real_server 198.18.0.3 80 {
        weight 1
        inhibit_on_failure
        TCP_CHECK {
            connect_timeout 3
        }
    }
}
virtual_server fwmark 1 {
    lb_algo rr
    lb_kind NAT
    real_server 198.18.0.2 8080 {
        weight 1
    }
    real_server 198.18.0.3 8080 {
        weight 1
    }
}
`)
	on := []string{"--director", "netns:" + name + "-director", "--client", "netns:" + name + "-client"}

	r := lvsdoctor(t, append([]string{"check", "--keepalived", conf, "--hosts", hosts}, on...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "healthy · 0 findings") {
		t.Errorf("check --keepalived on the healthy lab: want exit 0 and healthy\n%s", r)
	}
	// The fwmark service names only its mark: its VIP and port come from
	// the director's marking rule, and it is tested like the others.
	for _, want := range []string{"tcp 203.0.113.100:80", "-director fwmark 1 ", "requests answered from 198.18.0.3:8080"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check --keepalived did not check %q:\n%s", want, r.stdout)
		}
	}

	r = lvsdoctor(t, append([]string{"check", "--hosts", hosts, "--format", "json"}, on...)...)
	if r.code != 0 {
		t.Errorf("check --director (services from its table) on the healthy lab: want exit 0\n%s", r)
	}
	res, _ := parseResult(t, []byte(r.stdout))
	services := map[string]bool{}
	for _, s := range res.Steps {
		if s.Service != "" {
			services[s.Service] = true
		}
	}
	for _, want := range []string{"tcp 203.0.113.100:80", "udp 203.0.113.100:53"} {
		if !services[want] {
			t.Errorf("check --director did not check %s, read from the director's table (checked %v)", want, services)
		}
	}

	write(hosts, fmt.Sprintf("198.18.0.2 netns:%s-rs1\n", name))
	r = lvsdoctor(t, append([]string{"check", "--keepalived", conf, "--hosts", hosts}, on...)...)
	if r.code != 2 || !strings.Contains(r.stderr, "no host for real server 198.18.0.3") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("a real server missing from the host map: want exit 2 and one line naming it\n%s", r)
	}
	r = lvsdoctor(t, "check", "--keepalived", conf, "--client", "local")
	if r.code != 2 || !strings.Contains(r.stderr, "--keepalived needs --director HOST") {
		t.Errorf("--keepalived without --director: want exit 2 and what to add\n%s", r)
	}
}
