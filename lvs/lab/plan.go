package lab

import (
	"fmt"
	"net"
	"strconv"
)

// plan computes the lab's intended shape from the options; everything that
// builds or restores the lab works from it.
func plan(o Options) *State {
	s := &State{Name: o.Name, Options: o}
	ns := func(role string) string { return o.Name + "-" + role }
	cidr := func(ip net.IP, n *net.IPNet) string {
		ones, _ := n.Mask.Size()
		return fmt.Sprintf("%s/%d", ip, ones)
	}
	s.Hosts = append(s.Hosts,
		Host{Role: RoleSwitch, Namespace: ns(RoleSwitch)},
		Host{Role: RoleClient, Namespace: ns(RoleClient), Gateway: RouterPub.String(),
			Ifaces: []Iface{{Name: "eth0", Peer: "client", Bridge: "pub", Addrs: []string{cidr(ClientIP, PubNet)}}}},
		Host{Role: RoleDirector, Namespace: ns(RoleDirector), Forward: true,
			Ifaces: []Iface{
				{Name: "eth0", Peer: "dir-eth0", Bridge: "pub", Addrs: []string{cidr(DirPubIP, PubNet), VIP.String() + "/32"}},
				{Name: "eth1", Peer: "dir-eth1", Bridge: "priv", Addrs: []string{cidr(DIP, PrivNet)}},
			}},
		Host{Role: RoleRouter, Namespace: ns(RoleRouter), Forward: true,
			Ifaces: []Iface{
				{Name: "eth0", Peer: "rtr-eth0", Bridge: "priv", Addrs: []string{cidr(RouterPriv, PrivNet)}},
				{Name: "eth1", Peer: "rtr-eth1", Bridge: "pub", Addrs: []string{cidr(RouterPub, PubNet)}},
			}},
	)
	sched := "rr"
	if len(o.Weights) > 0 {
		sched = "wrr"
	}
	http := Service{Proto: "tcp", VIP: VIP.String(), Port: 80, Scheduler: sched, Kind: KindHTTP}
	udp := Service{Proto: "udp", VIP: VIP.String(), Port: 53, Scheduler: sched, Kind: KindUDPEcho}
	for i := 1; i <= o.RealServers; i++ {
		role := "rs" + strconv.Itoa(i)
		s.Hosts = append(s.Hosts, Host{Role: role, Namespace: ns(role), Gateway: DIP.String(),
			Ifaces: []Iface{{Name: "eth0", Peer: role, Bridge: "priv", Addrs: []string{cidr(RIP(i), PrivNet)}}}})
		w := 1
		if len(o.Weights) > 0 {
			w = o.Weights[i-1]
		}
		http.RealServers = append(http.RealServers, RealServer{Name: role, Address: RIP(i).String(), Port: 80, Weight: w})
		udp.RealServers = append(udp.RealServers, RealServer{Name: role, Address: RIP(i).String(), Port: 53, Weight: w})
	}
	s.Services = []Service{http, udp}
	return s
}

// hostSysctls are the explicit values every host gets. New namespaces
// inherit the host machine's all/default IPv4 settings, so each is written.
// Global keys come first so that interfaces created later inherit "default".
func hostSysctls(h *Host, withIfaces bool) []sysctl {
	fwd, redir := "0", "0"
	if h.Forward {
		fwd = "1"
	}
	if h.Role == RoleDirector {
		redir = "1" // a stock kernel sends redirects; icmp-redirect-bypass needs it
	}
	kv := []sysctl{
		{Key: "net.ipv4.ip_forward", Value: fwd},
		{Key: "net.ipv4.ping_group_range", Value: "0 2147483647"},
		// IPv6 stays off: the lab is IPv4 and captures stay free of RS/ND/MLD.
		{Key: "net.ipv6.conf.all.disable_ipv6", Value: "1", Optional: true},
		{Key: "net.ipv6.conf.default.disable_ipv6", Value: "1", Optional: true},
	}
	if h.Role == RoleSwitch {
		for _, k := range []string{"iptables", "ip6tables", "arptables"} {
			kv = append(kv, sysctl{Key: "net.bridge.bridge-nf-call-" + k, Value: "0", Optional: true})
		}
	}
	confs := []string{"all", "default"}
	if withIfaces {
		for _, i := range h.Ifaces {
			confs = append(confs, i.Name)
		}
	}
	for _, c := range confs {
		p := "net.ipv4.conf." + c + "."
		kv = append(kv,
			sysctl{Key: p + "rp_filter", Value: "0"},
			sysctl{Key: p + "send_redirects", Value: redir},
			sysctl{Key: p + "accept_redirects", Value: "1"},
			sysctl{Key: p + "arp_ignore", Value: "0"},
			sysctl{Key: p + "arp_announce", Value: "0"},
		)
	}
	return kv
}
