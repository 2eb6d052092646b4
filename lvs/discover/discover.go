// Package discover reads the virtual services a director really runs,
// from its IPVS table or, where it balances with nftables, from its DNAT
// rules, and turns them into the services of a topology file: what
// `lvsdoctor discover` writes for the operator to complete.
package discover

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// Services lists the director's services. Real servers come with their
// address and weight; their hosts are left empty (or taken from hosts, a
// map from RIP to host string).
func Services(f *obs.Facts, hosts map[string]string) ([]topology.Service, error) {
	var out []topology.Service
	if f.IPVS != nil && len(f.IPVS.Services) > 0 {
		for _, s := range f.IPVS.Services {
			ts := topology.Service{Proto: s.Proto, VIP: s.Addr, Mark: s.Mark, Scheduler: s.Scheduler, Persistent: s.Persistent}
			if s.Proto == "fwmark" {
				// The table knows only the mark: the traffic to test it
				// with is what the marking rules match.
				ts.VIP, ts.Ports = MarkedTraffic(f, s.Mark)
			}
			for _, d := range s.Dests {
				w := d.Weight
				addr := d.Addr
				if ap, err := netip.ParseAddrPort(addr); err == nil && ap.Port() == 0 {
					// Port 0 (a firewall-mark service): the packet keeps
					// its port; the topology then takes the first of ports.
					addr = ap.Addr().String()
				}
				ts.RealServers = append(ts.RealServers, topology.RealServer{Address: addr, Forward: d.Forward, Weight: &w, Host: hostFor(hosts, d.Addr)})
			}
			out = append(out, ts)
		}
		return out, nil
	}
	for _, r := range f.NftRules {
		if r.NAT != "dnat" || r.DAddr == "" || r.DPort == 0 || len(r.NATTo) == 0 {
			continue
		}
		vip, err := netip.ParseAddr(r.DAddr)
		if err != nil {
			continue // a prefix: not one virtual service
		}
		proto := r.Proto
		if proto == "" {
			proto = "tcp"
		}
		ts := topology.Service{Proto: proto, VIP: netip.AddrPortFrom(vip, uint16(r.DPort)).String(), Scheduler: scheduler(r)}
		// A numgen map lists a real server once per unit of weight.
		weights := map[string]int{}
		var order []string
		for _, t := range r.NATTo {
			addr := t
			if _, err := netip.ParseAddr(t); err == nil {
				addr = t + ":" + strconv.Itoa(r.DPort)
			}
			if weights[addr] == 0 {
				order = append(order, addr)
			}
			weights[addr]++
		}
		same := true
		for _, w := range weights {
			same = same && w == weights[order[0]]
		}
		if !same && ts.Scheduler == "rr" {
			ts.Scheduler = "wrr"
		}
		for _, a := range order {
			w := weights[a]
			if same {
				w = 1
			}
			ts.RealServers = append(ts.RealServers, topology.RealServer{Address: a, Forward: "masq", Weight: &w, Host: hostFor(hosts, a)})
		}
		out = append(out, ts)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no virtual service found: no IPVS service and no nftables DNAT rule for a VIP:port")
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].VIP < out[j].VIP })
	return out, nil
}

// MarkedTraffic reads which traffic the director marks with mark: the
// destination address and the protocol/port of its marking rules (nft
// `meta mark set`, iptables `-j MARK --set-mark`/`--set-xmark`). The VIP
// is given only when every rule names the same single address; no rule
// found leaves both empty for the operator.
func MarkedTraffic(f *obs.Facts, mark uint32) (vip string, ports []string) {
	addrs := map[string]bool{}
	seen := map[string]bool{}
	add := func(daddr, proto string, dport int) {
		if daddr == "" || dport == 0 {
			return
		}
		if p, err := netip.ParsePrefix(daddr); err == nil && p.IsSingleIP() {
			daddr = p.Addr().String()
		}
		if _, err := netip.ParseAddr(daddr); err != nil {
			return
		}
		addrs[daddr] = true
		if proto == "" {
			proto = "tcp"
		}
		if spec := fmt.Sprintf("%s/%d", proto, dport); (proto == "tcp" || proto == "udp") && !seen[spec] {
			seen[spec] = true
			ports = append(ports, spec)
		}
	}
	for _, r := range f.NftRules {
		if r.Mark != nil && *r.Mark == mark {
			add(r.DAddr, r.Proto, r.DPort)
		}
	}
	for _, l := range strings.Split(f.IptablesSave, "\n") {
		if m, ok := iptablesMark(l); ok && m == mark {
			add(iptablesArg(l, "-d"), iptablesArg(l, "-p"), atoi(iptablesArg(l, "--dport")))
		}
	}
	if len(addrs) != 1 {
		return "", nil
	}
	for a := range addrs {
		vip = a
	}
	return vip, ports
}

// iptablesMark reads the mark an iptables-save rule sets.
func iptablesMark(l string) (uint32, bool) {
	if !strings.Contains(l, "-j MARK") {
		return 0, false
	}
	v := iptablesArg(l, "--set-mark")
	if v == "" {
		v = iptablesArg(l, "--set-xmark")
	}
	v, _, _ = strings.Cut(v, "/")
	n, err := strconv.ParseUint(v, 0, 32)
	return uint32(n), err == nil
}

// iptablesArg is the value after flag in an iptables-save line.
func iptablesArg(l, flag string) string {
	fs := strings.Fields(l)
	for i := 0; i+1 < len(fs); i++ {
		if fs[i] == flag {
			return fs[i+1]
		}
	}
	return ""
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// scheduler names the nft form the way ipvsadm would: numgen inc is
// round robin, a hash of the client is source hashing.
func scheduler(r obs.NftRule) string {
	switch {
	case strings.Contains(r.Text, "jhash"), strings.Contains(r.Text, "symhash"):
		return "sh"
	case strings.Contains(r.Text, "numgen random"):
		return "rr" // no IPVS equivalent; random spreads like rr
	}
	return "rr"
}

func hostFor(hosts map[string]string, addr string) string {
	if h, ok := hosts[addr]; ok {
		return h
	}
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return hosts[ap.Addr().String()]
	}
	return ""
}

// ParseHosts reads a host map: one "ADDRESS HOST" pair a line, # comments.
func ParseHosts(name string, data string) (map[string]string, error) {
	m := map[string]string{}
	for i, ln := range strings.Split(data, "\n") {
		ln = strings.TrimSpace(ln)
		if j := strings.IndexByte(ln, '#'); j >= 0 {
			ln = strings.TrimSpace(ln[:j])
		}
		if ln == "" {
			continue
		}
		fs := strings.Fields(ln)
		if len(fs) != 2 {
			return nil, fmt.Errorf("%s:%d: want \"ADDRESS HOST\" (e.g. 198.18.0.2 ssh://root@rs1), got %q", name, i+1, ln)
		}
		if _, err := netip.ParseAddr(fs[0]); err != nil {
			return nil, fmt.Errorf("%s:%d: %q is not an IPv4 address", name, i+1, fs[0])
		}
		if err := topology.ValidHost(fs[1]); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, i+1, err)
		}
		m[fs[0]] = fs[1]
	}
	return m, nil
}

// Write renders a topology file with the director, the client (when
// known) and the services; real servers without a host get a comment
// telling the operator what to fill in.
func Write(director, client, clientAddr string, svcs []topology.Service) string {
	var b strings.Builder
	b.WriteString("# written by lvsdoctor discover from the director's table; complete what is marked FILL IN\n")
	if client == "" {
		client = "FILL-IN"
		b.WriteString("# FILL IN the client: how to reach a host that can connect to the VIP (netns:NAME, ssh://user@host, local)\n")
	}
	fmt.Fprintf(&b, "client:\n  host: %s\n", client)
	if clientAddr != "" {
		fmt.Fprintf(&b, "  address: %s\n", clientAddr)
	}
	fmt.Fprintf(&b, "director:\n  host: %s\nservices:\n", director)
	for _, s := range svcs {
		if s.Proto == "fwmark" && s.VIP == "" {
			b.WriteString("    # FILL IN vip: and ports: to test this service: no marking rule for its mark was found\n")
		}
		fmt.Fprintf(&b, "  - vip: %s\n    proto: %s\n", s.VIP, s.Proto)
		if s.Mark != 0 {
			fmt.Fprintf(&b, "    mark: %d\n", s.Mark)
		}
		if len(s.Ports) > 0 {
			fmt.Fprintf(&b, "    ports: [%s]\n", strings.Join(s.Ports, ", "))
		}
		if s.Scheduler != "" {
			fmt.Fprintf(&b, "    scheduler: %s\n", s.Scheduler)
		}
		if s.Persistent {
			b.WriteString("    persistent: true\n")
		}
		b.WriteString("    realservers:\n")
		for _, r := range s.RealServers {
			fmt.Fprintf(&b, "      - address: %s\n", r.Address)
			if r.Host == "" {
				fmt.Fprintf(&b, "        host: FILL-IN   # how to reach %s: netns:NAME, ssh://user@host, or an ~/.ssh/config alias\n", r.Address)
			} else {
				fmt.Fprintf(&b, "        host: %s\n", r.Host)
			}
			if r.Forward != "" {
				fmt.Fprintf(&b, "        forward: %s\n", r.Forward)
			}
			if r.Weight != nil {
				fmt.Fprintf(&b, "        weight: %d\n", *r.Weight)
			}
		}
	}
	return b.String()
}
