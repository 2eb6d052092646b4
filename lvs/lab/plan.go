package lab

import (
	"fmt"
	"net"
	"strconv"
)

// Lab services beyond HTTP and the UDP echo.
const (
	// FTPPort is the FTP service's port (VIP:21, RIP:21).
	FTPPort = 21
	// MarkPort and Mark: the firewall-mark service marks tcp VIP:8080
	// with mark 1 and balances by mark.
	MarkPort = 8080
	Mark     = 1
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
	flat := o.Topology == TopologyFlat
	// In the flat lab every port is on the public bridge.
	privBr := "priv"
	if flat {
		privBr = "pub"
	}
	director := Host{Role: RoleDirector, Namespace: ns(RoleDirector), Forward: true,
		Ifaces: []Iface{
			{Name: "eth0", Peer: "dir-eth0", Bridge: "pub", Addrs: []string{cidr(DirPubIP, PubNet), VIP.String() + "/32"}},
			{Name: "eth1", Peer: "dir-eth1", Bridge: "priv", Addrs: []string{cidr(DIP, PrivNet)}},
		}}
	router := Host{Role: RoleRouter, Namespace: ns(RoleRouter), Forward: true,
		Ifaces: []Iface{
			{Name: "eth0", Peer: "rtr-eth0", Bridge: privBr, Addrs: []string{cidr(RouterPriv, PrivNet)}},
			{Name: "eth1", Peer: "rtr-eth1", Bridge: "pub", Addrs: []string{cidr(RouterPub, PubNet)}},
		}}
	if flat {
		// One arm: the DIP sits on the public interface. A one-arm
		// director must not send redirects (icmp-redirect-bypass turns
		// them on). The router has two legs on one segment: it answers
		// ARP only for the address of the leg asked, or the client could
		// reach the private side through its private leg.
		director.Ifaces = []Iface{{Name: "eth0", Peer: "dir-eth0", Bridge: "pub",
			Addrs: []string{cidr(DirPubIP, PubNet), VIP.String() + "/32", cidr(DIP, PrivNet)}}}
		director.Conf = map[string]string{"send_redirects": "0"}
		router.Conf = map[string]string{"arp_ignore": "1", "arp_announce": "2"}
	}
	s.Hosts = append(s.Hosts,
		Host{Role: RoleSwitch, Namespace: ns(RoleSwitch)},
		Host{Role: RoleClient, Namespace: ns(RoleClient), Gateway: RouterPub.String(),
			Ifaces: []Iface{{Name: "eth0", Peer: "client", Bridge: "pub", Addrs: []string{cidr(ClientIP, PubNet)}}}},
		director, router,
	)
	sched := "rr"
	if len(o.Weights) > 0 {
		sched = "wrr"
	}
	if o.Datapath == DatapathNftStateless {
		sched = "sh" // a hash of the client's address and port picks the real server
	}
	http := Service{Proto: "tcp", VIP: VIP.String(), Port: 80, Scheduler: sched, Kind: KindHTTP}
	udp := Service{Proto: "udp", VIP: VIP.String(), Port: 53, Scheduler: sched, Kind: KindUDPEcho}
	ftp := Service{Proto: "tcp", VIP: VIP.String(), Port: FTPPort, Scheduler: sched, Kind: KindFTP}
	mark := Service{Proto: "fwmark", VIP: VIP.String(), Port: MarkPort, Mark: Mark, MarkProto: "tcp", Scheduler: sched, Kind: KindHTTPAlt}
	for i := 1; i <= o.RealServers; i++ {
		role := "rs" + strconv.Itoa(i)
		s.Hosts = append(s.Hosts, Host{Role: role, Namespace: ns(role), Gateway: DIP.String(),
			Ifaces: []Iface{{Name: "eth0", Peer: role, Bridge: privBr, Addrs: []string{cidr(RIP(i), PrivNet)}}}})
		w := 1
		if len(o.Weights) > 0 {
			w = o.Weights[i-1]
		}
		rs := func(port int) RealServer {
			return RealServer{Name: role, Address: RIP(i).String(), Port: port, Weight: w}
		}
		http.RealServers = append(http.RealServers, rs(80))
		udp.RealServers = append(udp.RealServers, rs(53))
		ftp.RealServers = append(ftp.RealServers, rs(FTPPort))
		mark.RealServers = append(mark.RealServers, rs(MarkPort))
	}
	s.Services = []Service{http, udp}
	if o.Datapath != DatapathNftStateless {
		// FTP through NAT needs the conntrack helper: not stateless.
		s.Services = append(s.Services, ftp)
	}
	s.Services = append(s.Services, mark)
	return s
}

// TopologyClient is the client as the topology file names it: the client
// namespace, or the director itself (client-on-director) with its public
// address.
func (s *State) TopologyClient() (namespace string, addr net.IP) {
	if s.Options.Topology == TopologyClientOnDirector {
		ip, _ := s.ifaceAddr(RoleDirector, s.vipIface().Name)
		return s.Host(RoleDirector).Namespace, ip
	}
	return s.Host(RoleClient).Namespace, s.ClientIP()
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
	conf := func(key, def string) string {
		if v, ok := h.Conf[key]; ok {
			return v
		}
		return def
	}
	for _, c := range confs {
		p := "net.ipv4.conf." + c + "."
		kv = append(kv,
			sysctl{Key: p + "rp_filter", Value: conf("rp_filter", "0")},
			sysctl{Key: p + "send_redirects", Value: conf("send_redirects", redir)},
			sysctl{Key: p + "accept_redirects", Value: conf("accept_redirects", "1")},
			sysctl{Key: p + "arp_ignore", Value: conf("arp_ignore", "0")},
			sysctl{Key: p + "arp_announce", Value: conf("arp_announce", "0")},
		)
	}
	return kv
}
