// Package obs holds what probes see on a host, as plain JSON-serialisable
// data. It is the vocabulary shared by the agent (which measures), the
// checklist engine (which asks) and the classifier (which judges): nothing
// here knows how a value was measured or what it means for a diagnosis.
//
// A zero value must never be mistaken for a measurement: slices that were
// not read stay nil and the reason goes to Errors, so "no rule" and "rules
// not readable" stay apart.
package obs

import "time"

// Facts is the static picture of one host at one moment.
type Facts struct {
	Hostname string            `json:"hostname,omitempty"`
	Links    []Link            `json:"links"`
	Addrs    []Addr            `json:"addrs"`
	Routes   []Route           `json:"routes"`
	Neigh    []Neigh           `json:"neigh"`
	Sysctls  map[string]string `json:"sysctls"` // "net.ipv4.conf.eth0.rp_filter" -> "1"
	// Counters from /proc/net/netstat and /proc/net/snmp, keyed
	// "TcpExt.IPReversePathFilter", "Ip.ForwDatagrams", "Icmp.OutRedirects".
	Counters map[string]int64 `json:"counters"`
	// CountersRaw is how an agent asked for FactsArgs.RawCounters sends
	// them: /proc/net/netstat and /proc/net/snmp as read, a third of the
	// cost of the map to encode and decode; facts.Decode parses it into
	// Counters on arrival, and an observations file holds Counters only.
	CountersRaw string     `json:"counters_raw,omitempty"`
	NftChains   []NftChain `json:"nft_chains"`
	NftRules    []NftRule  `json:"nft_rules"`
	// IptablesSave is `iptables-save -c` (and the legacy variant) where the
	// command exists on the host; empty when it does not.
	IptablesSave string     `json:"iptables_save,omitempty"`
	Conntrack    []CTEntry  `json:"conntrack"`
	Listeners    []Listener `json:"listeners"`
	IPVS         *IPVSTable `json:"ipvs,omitempty"` // nil: no IPVS in this kernel
	// Kernel is the release (uname -r): some IPVS behaviours changed
	// with it.
	Kernel string `json:"kernel,omitempty"`
	// Modules is what the kernel has of IPVS and the FTP helpers; read
	// on the director only (FactsArgs.Director), nil elsewhere.
	Modules  *Modules    `json:"modules,omitempty"`
	Errors   []string    `json:"errors,omitempty"`
	TakenAt  time.Time   `json:"taken_at"`
	Datapath string      `json:"datapath,omitempty"` // "ipvs", "nft", "nft-stateless", "" when not a director
	Extra    interface{} `json:"extra,omitempty"`
}

// FactsArgs leaves out parts of Facts. The zero value reads everything.
// Conntrack and the socket list cost time in proportion to the whole
// machine, not the namespace (the kernel walks global hash tables for
// them), and the static parts do not change during a test: a check skips
// what it does not need on a host, so fifty real servers stay cheap.
type FactsArgs struct {
	SkipConntrack bool `json:"skip_conntrack,omitempty"`
	// ConntrackOf reads only the entries of these connections, each
	// looked up by its original tuple as `conntrack -G` does: a busy
	// director holds hundreds of thousands that are not the test's, and
	// a dump of them all costs time and memory in proportion to the
	// table, not to the test. Empty dumps them all.
	ConntrackOf   []CTKey `json:"conntrack_of,omitempty"`
	SkipListeners bool    `json:"skip_listeners,omitempty"`
	// SkipStatic leaves out addresses, routes and sysctls.
	SkipStatic bool `json:"skip_static,omitempty"`
	// RawCounters sends the counters as read (Facts.CountersRaw).
	RawCounters bool `json:"raw_counters,omitempty"`
	// Director also reads which IPVS modules are loaded or loadable: it
	// means reading modules.dep, which only the director needs.
	Director bool `json:"director,omitempty"`
}

// Modules lists kernel modules of IPVS (ip_vs, ip_vs_rr, ip_vs_ftp...) and
// of the conntrack FTP helpers, the way kubeadm's preflight looks at them:
// loaded (/proc/modules), built in (modules.builtin) or loadable
// (modules.dep). A nil list was not read (the file is missing).
type Modules struct {
	Loaded   []string `json:"loaded"`
	Builtin  []string `json:"builtin"`
	Loadable []string `json:"loadable"`
}

// Has says the module is loaded, built in or loadable, and whether that
// could be told at all (false, false: the module lists were not readable).
func (m *Modules) Has(name string) (has, known bool) {
	if m == nil {
		return false, false
	}
	for _, l := range [][]string{m.Loaded, m.Builtin, m.Loadable} {
		for _, n := range l {
			if n == name {
				return true, true
			}
		}
	}
	return false, m.Loaded != nil && (m.Builtin != nil || m.Loadable != nil)
}

type Link struct {
	Index     int    `json:"index"`
	Name      string `json:"name"`
	Kind      string `json:"kind,omitempty"` // veth, bridge, loopback, dummy...
	Up        bool   `json:"up"`             // administratively up (IFF_UP)
	Carrier   bool   `json:"carrier"`        // lower layer up
	OperState string `json:"operstate"`
	MTU       int    `json:"mtu"`
	MAC       string `json:"mac,omitempty"`
	Master    string `json:"master,omitempty"`
	RxPackets uint64 `json:"rx_packets"`
	TxPackets uint64 `json:"tx_packets"`
	RxErrors  uint64 `json:"rx_errors"`
	TxErrors  uint64 `json:"tx_errors"`
	RxDropped uint64 `json:"rx_dropped"`
	TxDropped uint64 `json:"tx_dropped"`
}

type Addr struct {
	Link   string `json:"link"`
	Prefix string `json:"prefix"` // 198.18.0.2/24
}

type Route struct {
	Table    int    `json:"table"`
	Type     string `json:"type"` // unicast, local, broadcast, blackhole, unreachable...
	Dst      string `json:"dst"`  // "default" or a prefix
	Gateway  string `json:"gateway,omitempty"`
	Dev      string `json:"dev,omitempty"`
	Src      string `json:"src,omitempty"`
	Protocol string `json:"protocol,omitempty"`
	Scope    string `json:"scope,omitempty"`
	Metric   int    `json:"metric,omitempty"`
	Flags    string `json:"flags,omitempty"` // e.g. "redirected" for a cached redirect
}

type Neigh struct {
	IP    string `json:"ip"`
	Link  string `json:"link"`
	MAC   string `json:"mac,omitempty"`
	State string `json:"state"` // REACHABLE, STALE, FAILED, PERMANENT, INCOMPLETE...
}

type NftChain struct {
	Family   string `json:"family"`
	Table    string `json:"table"`
	Name     string `json:"name"`
	Type     string `json:"type,omitempty"` // filter, nat, route
	Hook     string `json:"hook,omitempty"` // prerouting, input, forward, output, postrouting
	Priority int    `json:"priority"`
	Policy   string `json:"policy,omitempty"` // accept, drop
}

// NftRule is one rule in a form the classifier can reason about without an
// nft parser: the matches it could decode, its verdict or NAT action, and
// its counter.
type NftRule struct {
	Family  string `json:"family"`
	Table   string `json:"table"`
	Chain   string `json:"chain"`
	Handle  uint64 `json:"handle"`
	Comment string `json:"comment,omitempty"`
	Text    string `json:"text"` // nft-like rendering, for humans
	// Matches decoded from payload/meta comparisons; empty when the rule
	// has none or they could not be decoded (Opaque then says so).
	SAddr   string `json:"saddr,omitempty"` // prefix or address
	DAddr   string `json:"daddr,omitempty"`
	Proto   string `json:"proto,omitempty"` // tcp, udp, icmp
	SPort   int    `json:"sport,omitempty"`
	DPort   int    `json:"dport,omitempty"`
	IIfName string `json:"iifname,omitempty"`
	OIfName string `json:"oifname,omitempty"`
	CtState string `json:"ct_state,omitempty"` // "invalid", "established,related"...
	// Verdict is accept, drop, reject, jump, goto, return, or "" (no verdict).
	Verdict string `json:"verdict,omitempty"`
	// NAT is dnat, snat, masquerade or "" ; NATTo lists the targets
	// (addresses, or the map values of a numgen/jhash map).
	NAT   string   `json:"nat,omitempty"`
	NATTo []string `json:"nat_to,omitempty"`
	Mark  *uint32  `json:"mark,omitempty"` // meta mark set
	// MarkMatch is the mark the rule matches (meta mark == M).
	MarkMatch *uint32 `json:"mark_match,omitempty"`
	// Helper is the ct helper object the rule attaches (ct helper set).
	Helper string `json:"helper,omitempty"`
	// Stateless is set on a DNAT done by rewriting the address in place
	// (payload write, no conntrack NAT).
	Stateless bool `json:"stateless,omitempty"`
	Opaque    bool `json:"opaque,omitempty"`
	// Packets/Bytes are nil when the rule has no counter.
	Packets *uint64 `json:"packets,omitempty"`
	Bytes   *uint64 `json:"bytes,omitempty"`
}

// CTKey is a connection's original tuple as its client opened it.
type CTKey struct {
	Proto string `json:"proto"` // tcp, udp
	Src   string `json:"src"`   // CIP:CPORT
	Dst   string `json:"dst"`   // VIP:VPORT
}

type CTEntry struct {
	Proto   string `json:"proto"`
	OrigSrc string `json:"orig_src"` // ip:port
	OrigDst string `json:"orig_dst"`
	ReplSrc string `json:"repl_src"`
	ReplDst string `json:"repl_dst"`
	State   string `json:"state,omitempty"`  // TCP state: SYN_SENT, SYN_RECV, ESTABLISHED...
	Status  string `json:"status,omitempty"` // e.g. "SEEN_REPLY,ASSURED" or "UNREPLIED"
}

type Listener struct {
	Proto string `json:"proto"` // tcp, udp
	Addr  string `json:"addr"`  // ip:port, 0.0.0.0:80
	Inode uint64 `json:"inode,omitempty"`
}

// IPVSTable is the director's virtual service table as IPVS reports it.
type IPVSTable struct {
	// Version and ConnTableSize are those of the first line of
	// /proc/net/ip_vs, "IP Virtual Server version 1.2.1 (size=4096)": the
	// size is the number of buckets of the connection hash table.
	Version       string `json:"version,omitempty"`
	ConnTableSize int    `json:"conn_table_size,omitempty"`
	// Timeouts are `ipvsadm -L --timeout` (netlink); nil when not read.
	Timeouts *IPVSTimeouts `json:"timeouts,omitempty"`
	Services []IPVSService `json:"services"`
}

// IPVSTimeouts are the connection timeouts of IPVS in seconds.
type IPVSTimeouts struct {
	TCP    uint32 `json:"tcp"`
	TCPFin uint32 `json:"tcpfin"`
	UDP    uint32 `json:"udp"`
}

type IPVSService struct {
	Proto      string     `json:"proto"` // tcp, udp, fwmark
	Addr       string     `json:"addr,omitempty"`
	Mark       uint32     `json:"mark,omitempty"`
	Scheduler  string     `json:"scheduler"`
	Persistent bool       `json:"persistent"`
	Dests      []IPVSDest `json:"dests"`
}

type IPVSDest struct {
	Addr      string `json:"addr"`
	Forward   string `json:"forward"` // masq, route, tunnel
	Weight    int    `json:"weight"`
	ActiveC   int    `json:"active"`
	InactiveC int    `json:"inactive"`
}

// PingArgs asks for `ping -n -c Count -I Src Dst`.
type PingArgs struct {
	Src     string        `json:"src,omitempty"`
	Dst     string        `json:"dst"`
	Count   int           `json:"count"`
	Timeout time.Duration `json:"timeout"` // whole probe
}

type Ping struct {
	Src      string          `json:"src,omitempty"`
	Dst      string          `json:"dst"`
	Sent     int             `json:"sent"`
	Received int             `json:"received"`
	RTTs     []time.Duration `json:"rtts,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// TraceArgs asks for `traceroute -n -s Src Dst` with at most MaxHops hops.
type TraceArgs struct {
	Src     string        `json:"src,omitempty"`
	Dst     string        `json:"dst"`
	MaxHops int           `json:"max_hops"`
	Timeout time.Duration `json:"timeout"` // per probe; hops run at once
}

type Trace struct {
	Src     string `json:"src,omitempty"`
	Dst     string `json:"dst"`
	Hops    []Hop  `json:"hops"` // index i is TTL i+1
	Reached bool   `json:"reached"`
	Error   string `json:"error,omitempty"`
}

type Hop struct {
	TTL  int           `json:"ttl"`
	Addr string        `json:"addr,omitempty"` // empty: no answer
	RTT  time.Duration `json:"rtt,omitempty"`
	// ICMP type and code of the answer: 11/0 time exceeded, 3/3 port
	// unreachable (reached), 3/1 host unreachable...
	Type int `json:"type,omitempty"`
	Code int `json:"code,omitempty"`
}

// RouteGetArgs asks for `ip route get Dst [from Src]`.
type RouteGetArgs struct {
	Dst string `json:"dst"`
	Src string `json:"src,omitempty"`
	// Iif asks the question the way the kernel asks it for a packet that
	// arrives on that interface (`ip route get Dst from Src iif Iif`).
	Iif string `json:"iif,omitempty"`
}

type RouteGet struct {
	Dst     string `json:"dst"`
	Src     string `json:"src,omitempty"`
	Iif     string `json:"iif,omitempty"`
	Type    string `json:"type,omitempty"` // unicast, local...
	Gateway string `json:"gateway,omitempty"`
	Dev     string `json:"dev,omitempty"`
	PrefSrc string `json:"prefsrc,omitempty"`
	Flags   string `json:"flags,omitempty"` // "redirected" where the kernel reports RTCF_REDIRECTED
	Error   string `json:"error,omitempty"` // e.g. "network is unreachable"
	// After is set on a lookup made again after the test traffic (a
	// redirect received during the test shows only then).
	After bool `json:"after,omitempty"`
}

// CaptureArgs starts a capture on every interface of a host at once
// (loopback excepted) that keeps only packets to or from Hosts, any ICMP,
// and, with ARP, ARP.
type CaptureArgs struct {
	Hosts      []string      `json:"hosts"`
	ARP        bool          `json:"arp"`
	MaxPackets int           `json:"max_packets"` // per interface
	MaxTime    time.Duration `json:"max_time"`    // hard stop if nobody stops it
	PcapDir    string        `json:"pcap_dir,omitempty"`
	Label      string        `json:"label,omitempty"` // file name prefix for pcapng
	// Ring is the kernel buffer per interface in bytes (0: the capture's
	// default, capture.DefaultRing); it keeps its number of blocks, so a
	// smaller one holds fewer packets per block, not less time.
	Ring int `json:"ring,omitempty"`
}

type CaptureStarted struct {
	ID         string   `json:"id"`
	Interfaces []string `json:"interfaces"`
}

type CaptureStopArgs struct {
	ID string `json:"id"`
}

type Capture struct {
	Interfaces []string `json:"interfaces"`
	Packets    []Packet `json:"packets"`
	// Frames is how the agent sends the packets: the headers of each
	// frame, packed (probes/capture, frames.go), a fraction of the size
	// and decoding cost of Packets as JSON. capture.Unpack turns them
	// into Packets on arrival; an observations file holds Packets only.
	Frames    []byte   `json:"frames,omitempty"`
	Dropped   int      `json:"dropped"` // packets past MaxPackets or lost by the ring
	Truncated bool     `json:"truncated,omitempty"`
	PcapFiles []string `json:"pcap_files,omitempty"`
	Error     string   `json:"error,omitempty"`
}

// Packet is one decoded frame. Dir is "in" or "out" as the kernel saw it
// on that interface (PACKET_OUTGOING).
type Packet struct {
	Time    time.Time `json:"time"`
	Iface   string    `json:"iface"`
	Dir     string    `json:"dir"`
	SrcMAC  string    `json:"src_mac,omitempty"`
	DstMAC  string    `json:"dst_mac,omitempty"`
	Proto   string    `json:"proto"` // tcp, udp, icmp, arp, other
	Src     string    `json:"src"`   // address
	Dst     string    `json:"dst"`
	SrcPort int       `json:"sport,omitempty"`
	DstPort int       `json:"dport,omitempty"`
	IPID    uint16    `json:"ipid,omitempty"`
	TTL     uint8     `json:"ttl,omitempty"`
	Flags   string    `json:"flags,omitempty"` // tcpdump style: S, S., ., P., F., R, R.
	Seq     uint32    `json:"seq,omitempty"`
	Len     int       `json:"len"` // payload length
	// ICMP: type/code and, for errors and redirects, the quoted header.
	ICMPType int     `json:"icmp_type,omitempty"`
	ICMPCode int     `json:"icmp_code,omitempty"`
	Gateway  string  `json:"gateway,omitempty"` // redirect target
	Inner    *Packet `json:"inner,omitempty"`
	// ARP: Op is "request" or "reply"; Src/Dst are the sender/target IPs.
	ARPOp string `json:"arp_op,omitempty"`
	// Payload is the first bytes of the transport payload, kept only where
	// it is text a diagnosis reads (FTP 227 replies).
	Payload string `json:"payload,omitempty"`
}

// ConnectArgs opens Count test connections from the client to Dst, all at
// once, each from its own source port.
type ConnectArgs struct {
	Proto   string        `json:"proto"` // tcp, udp
	Src     string        `json:"src,omitempty"`
	Dst     string        `json:"dst"` // VIP:VPORT
	Count   int           `json:"count"`
	Timeout time.Duration `json:"timeout"`
	// Payload is sent after the connection is up (TCP) or as the datagram
	// (UDP); empty sends an HTTP/1.0 GET for TCP and "lvsdoctor" for UDP.
	Payload string `json:"payload,omitempty"`
	// Gap spaces the connections' starts, so that a round-robin scheduler
	// sees them in order (0: all at once).
	Gap time.Duration `json:"gap,omitempty"`
	// App is what the connection says once up (TCP): "" sends Payload;
	// "ftp" logs in, asks PASV, opens the data connection to the address
	// of the 227 reply and lists a directory over it (Conn.Data).
	App string `json:"app,omitempty"`
	// Trickle, for TCP, sends the payload a line at a time, Trickle
	// apart: a slow upload, whose acknowledgements come back one by one
	// while the server waits in read (a real server acts on an ICMP
	// redirect only then).
	Trickle time.Duration `json:"trickle,omitempty"`
}

type Conn struct {
	Proto    string        `json:"proto"`
	Local    string        `json:"local"` // CIP:CPORT
	Remote   string        `json:"remote"`
	Result   string        `json:"result"` // ok, refused, reset, timeout, unreachable, error
	Error    string        `json:"error,omitempty"`
	Took     time.Duration `json:"took"`
	Response string        `json:"response,omitempty"` // first line of the answer (FTP: the 227 reply)
	// Data is the FTP data connection (App "ftp"), when a 227 reply came.
	Data *DataConn `json:"data,omitempty"`
}

// DataConn is a second connection a test opened on the server's word (the
// address of an FTP 227 reply, as the client received it).
type DataConn struct {
	Addr   string        `json:"addr"`            // IP:PORT the server named
	Local  string        `json:"local,omitempty"` // CIP:CPORT
	Result string        `json:"result"`          // as Conn.Result
	Error  string        `json:"error,omitempty"`
	Took   time.Duration `json:"took"`
}

type Connect struct {
	Conns []Conn `json:"conns"`
}
