package checks

import (
	"fmt"
	"net/netip"

	"github.com/lvsdoctor/lvsdoctor/checks/classify"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
)

// Planned is one thing a check would do on a host, with the manual
// command that shows the same, for --dry-run on a production cluster.
type Planned struct {
	Host    string `json:"host"`
	Spec    string `json:"spec"`
	What    string `json:"what"`
	Command string `json:"command"`
	Traffic bool   `json:"traffic"` // sends packets (ping, traceroute, connections)
}

// DryRun lists what Run would do on each host, contacting none. It
// mirrors runProbes (the test traffic is the same trafficPlan): change
// both together.
func DryRun(top *topology.Topology, opt Options) []Planned {
	opt.defaults()
	cip := top.Client.Address
	if cip == "" {
		cip = "CIP (asked from the client: ip route get VIP)"
	}
	var out []Planned
	add := func(h topology.Host, what, cmd string, traffic bool) {
		if opt.Static && traffic {
			return
		}
		out = append(out, Planned{Host: h.Label(), Spec: h.Host, What: what, Command: cmd, Traffic: traffic})
	}
	facts := "ip -s link; ip addr; ip route show table all; ip neigh; sysctl net.ipv4; nstat -az; nft list ruleset; iptables-save -c"
	hosts := append([]topology.Host{top.Client, top.Director}, realServers(top)...)
	for i, h := range hosts {
		role := classify.RoleRealServer
		switch i {
		case 0:
			role = classify.RoleClient
		case 1:
			role = classify.RoleDirector
		}
		cmd := facts
		switch role {
		case classify.RoleDirector:
			cmd += "; ss -ltun; conntrack -L; ipvsadm -Ln"
		case classify.RoleRealServer:
			cmd += "; ss -ltun"
		}
		add(h, "static picture, before and after the test", cmd, false)
		add(h, "capture on every interface during the test", fmt.Sprintf("tcpdump -ln -i any host %s", cip), true)
		switch role {
		case classify.RoleRealServer:
			add(h, "Q.1 ping the client from the RIP", fmt.Sprintf("ping -n -c1 -W%d -I %s %s", int(opt.Timeout.Seconds()+0.5), h.Address, cip), true)
			add(h, "Q.2 traceroute to the client from the RIP", fmt.Sprintf("traceroute -n -m 8 -s %s %s", h.Address, cip), true)
			add(h, "Q.2 the route back to the client", fmt.Sprintf("ip route get %s from %s", cip, h.Address), false)
		case classify.RoleDirector:
			add(h, "Q.3 the routes to the client and to each RIP", fmt.Sprintf("ip route get %s", cip), false)
		case classify.RoleClient:
			for _, t := range trafficPlan(top, top.ClientAddr(), false, opt) {
				cmd := "curl -s http://" + t.Dst
				if dst, err := netip.ParseAddrPort(t.Dst); err == nil && t.Proto == "udp" {
					cmd = fmt.Sprintf("echo lvsdoctor | nc -u -w1 %s %d", dst.Addr(), dst.Port())
				}
				add(h, fmt.Sprintf("Q.3 %d test connections to %s", t.Count, top.Services[t.Service]), cmd, true)
			}
		}
	}
	return out
}
