package ipvs

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// listMode is the column set of an `ipvsadm -Ln` listing, told by its
// title line (print_title in ipvsadm.c).
type listMode int

const (
	modePlain      listMode = iota // Forward Weight ActiveConn InActConn
	modeStats                      // --stats: Conns InPkts OutPkts InBytes OutBytes
	modeRate                       // --rate: CPS InPPS OutPPS InBPS OutBPS
	modeThresholds                 // --thresholds: Uthreshold Lthreshold ActiveConn InActConn
	modePersist                    // --persistent-conn: Weight PersistConn ActiveConn InActConn
)

// ParseIpvsadmList reads `ipvsadm -Ln` output, plain or with --stats,
// --rate, --thresholds or --persistent-conn (ipvsadm 1.26 to 1.31):
//
//	IP Virtual Server version 1.2.1 (size=4096)
//	Prot LocalAddress:Port Scheduler Flags
//	  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
//	TCP  203.0.113.100:80 rr
//	  -> 198.18.0.2:80                Masq    1      0          0
//	TCP  203.0.113.100:443 wlc persistent 300 mask 255.255.255.0
//	FWM  1 rr
//	  -> 198.18.0.2:0                 Route   1      0          0
//
// The --stats and --rate listings show no scheduler and no forwarding
// method (Scheduler and Forward stay ""); values with a K, M, G or T
// suffix are scaled back. Without -n ipvsadm prints names, which are
// reported as errors.
func ParseIpvsadmList(r io.Reader) (*Table, error) {
	const src = "ipvsadm -Ln"
	t := &Table{Services: []Service{}}
	sc := newScanner(r)
	mode := modePlain
	var cur *Service
	n := 0
	for sc.Scan() {
		n++
		l := &lineErr{src: src, n: n, text: sc.Text()}
		f := strings.Fields(l.text)
		if len(f) == 0 {
			continue
		}
		switch {
		case strings.HasPrefix(l.text, "IP Virtual Server version"):
			v, size, err := ParseVersionLine(l.text)
			if err != nil {
				return t, l.errf("%v", err)
			}
			t.Version, t.ConnTableSize = v, size
		case f[0] == "Prot":
			switch {
			case strings.Contains(l.text, "Conns"):
				mode = modeStats
			case strings.Contains(l.text, "CPS"):
				mode = modeRate
			case strings.Contains(l.text, "Uthreshold"):
				mode = modeThresholds
			case strings.Contains(l.text, "PersistConn"):
				mode = modePersist
			case strings.Contains(l.text, "Scheduler"):
				mode = modePlain
			default:
				return t, l.errf("unknown column titles")
			}
		case f[0] == "->" && len(f) > 1 && f[1] == "RemoteAddress:Port":
			// column titles
		case f[0] == "->":
			if cur == nil {
				return t, l.errf("real server line before any service")
			}
			d, err := listDest(f[1:], mode)
			if err != nil {
				return t, l.errf("%v", err)
			}
			cur.Dests = append(cur.Dests, d)
		case f[0] == "TCP" || f[0] == "UDP" || f[0] == "SCTP" || f[0] == "FWM":
			s, err := listService(f, mode)
			if err != nil {
				return t, l.errf("%v", err)
			}
			t.Services = append(t.Services, s)
			cur = &t.Services[len(t.Services)-1]
		default:
			return t, l.errf("not a service (TCP, UDP, SCTP, FWM) or real server (->) line")
		}
	}
	if err := sc.Err(); err != nil {
		return t, scanErr(src, n, err)
	}
	return t, nil
}

func listService(f []string, mode listMode) (Service, error) {
	s := Service{Proto: strings.ToLower(f[0]), Dests: []Dest{}}
	if len(f) < 2 {
		return s, errorf("service line without an address")
	}
	rest := f[2:]
	if f[0] == "FWM" {
		s.Proto = "fwmark"
		m, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil {
			return s, errorf("mark %q is not a number", f[1])
		}
		s.Mark = uint32(m)
		if len(rest) > 0 && rest[0] == "IPv6" {
			s.IPv6 = true
			rest = rest[1:]
		}
	} else {
		a, v6, err := parseNumericAddrPort(f[1])
		if err != nil {
			return s, err
		}
		s.Addr, s.IPv6 = a, v6
	}
	if mode == modeStats || mode == modeRate {
		st, err := statsCols(rest, mode)
		if err != nil {
			return s, err
		}
		s.Stats = st
		return s, nil
	}
	if len(rest) == 0 {
		return s, errorf("no scheduler after the address")
	}
	s.Scheduler = rest[0]
	rest = rest[1:]
	for len(rest) > 0 {
		w := rest[0]
		rest = rest[1:]
		switch {
		case w == "persistent":
			if len(rest) == 0 {
				return s, errorf("persistent without a timeout")
			}
			v, err := strconv.ParseUint(rest[0], 10, 32)
			if err != nil {
				return s, errorf("persistence timeout %q is not a number", rest[0])
			}
			s.Persistent, s.Timeout = true, uint32(v)
			s.Netmask = defaultMask(s.IPv6)
			rest = rest[1:]
		case w == "mask":
			if len(rest) == 0 || !s.Persistent {
				return s, errorf("mask without persistence or value")
			}
			m, err := parseMask(rest[0], s.IPv6)
			if err != nil {
				return s, err
			}
			s.Netmask = m
			rest = rest[1:]
		case w == "pe":
			if len(rest) == 0 {
				return s, errorf("pe without a name")
			}
			s.PE = rest[0]
			rest = rest[1:]
		case strings.HasPrefix(w, "(") && strings.HasSuffix(w, ")"):
			// scheduler flags as "(sh-fallback,sh-port)"
			for _, fl := range strings.Split(w[1:len(w)-1], ",") {
				if fl != "" {
					s.Flags = append(s.Flags, fl)
				}
			}
		case isFlagWord(w):
			s.Flags = append(s.Flags, w)
		default:
			return s, errorf("unknown word %q after the scheduler", w)
		}
	}
	return s, nil
}

func isFlagWord(w string) bool {
	switch w {
	case "ops", "sh-fallback", "sh-port", "mh-fallback", "mh-port", "flag-1", "flag-2", "flag-3":
		return true
	}
	return false
}

func defaultMask(v6 bool) string {
	if v6 {
		return "/128"
	}
	return "255.255.255.255"
}

// parseMask reads a persistence netmask: dotted IPv4, or a prefix length.
func parseMask(s string, v6 bool) (string, error) {
	if v6 {
		n, err := strconv.Atoi(strings.TrimPrefix(s, "/"))
		if err != nil || n < 1 || n > 128 {
			return "", errorf("IPv6 netmask %q: want a prefix length 1..128", s)
		}
		return "/" + strconv.Itoa(n), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return "", errorf("netmask %q is not a dotted IPv4 mask", s)
	}
	return a.String(), nil
}

func listDest(f []string, mode listMode) (Dest, error) {
	d := Dest{Weight: -1, ActiveC: -1, InactiveC: -1, PersistC: -1}
	if len(f) == 0 {
		return d, errorf("real server line without an address")
	}
	a, _, err := parseNumericAddrPort(f[0])
	if err != nil {
		return d, err
	}
	d.Addr = a
	cols := f[1:]
	switch mode {
	case modeStats, modeRate:
		st, err := statsCols(cols, mode)
		if err != nil {
			return d, err
		}
		d.Stats = st
		return d, nil
	case modePlain:
		if len(cols) != 4 {
			return d, errorf("want ADDR:PORT Forward Weight ActiveConn InActConn, got %d columns", len(f))
		}
		var ok bool
		if d.Forward, ok = forwardName(cols[0]); !ok {
			return d, errorf("forwarding method %q: want Masq, Route, Tunnel or Local", cols[0])
		}
		cols = cols[1:]
	default:
		if len(cols) != 4 {
			return d, errorf("want ADDR:PORT and 4 numbers, got %d columns", len(f))
		}
	}
	nums := make([]int, 4)
	for i, c := range cols {
		v, err := atoiRange(c, 0, 1<<31-1)
		if err != nil {
			return d, err
		}
		if i < len(nums) {
			nums[i] = v
		}
	}
	switch mode {
	case modePlain:
		d.Weight, d.ActiveC, d.InactiveC = nums[0], nums[1], nums[2]
	case modeThresholds:
		d.UThreshold, d.LThreshold, d.ActiveC, d.InactiveC = uint32(nums[0]), uint32(nums[1]), nums[2], nums[3]
	case modePersist:
		d.Weight, d.PersistC, d.ActiveC, d.InactiveC = nums[0], nums[1], nums[2], nums[3]
	}
	return d, nil
}

// statsCols reads the five numbers of --stats or --rate.
func statsCols(cols []string, mode listMode) (*Stats, error) {
	if len(cols) != 5 {
		return nil, errorf("want 5 numbers after the address, got %d", len(cols))
	}
	var v [5]uint64
	for i, c := range cols {
		x, err := largeNum(c)
		if err != nil {
			return nil, err
		}
		v[i] = x
	}
	if mode == modeRate {
		return &Stats{CPS: v[0], InPPS: v[1], OutPPS: v[2], InBPS: v[3], OutBPS: v[4]}, nil
	}
	return &Stats{Conns: v[0], InPkts: v[1], OutPkts: v[2], InBytes: v[3], OutBytes: v[4]}, nil
}

// largeNum reads print_largenum's output: a number, or one divided by a
// power of 1000 with a K, M, G or T suffix.
func largeNum(s string) (uint64, error) {
	mul := uint64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mul = 1e3
	case strings.HasSuffix(s, "M"):
		mul = 1e6
	case strings.HasSuffix(s, "G"):
		mul = 1e9
	case strings.HasSuffix(s, "T"):
		mul = 1e12
	}
	if mul != 1 {
		s = s[:len(s)-1]
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, errorf("%q is not a number", s)
	}
	if v > ^uint64(0)/mul {
		return 0, errorf("%q overflows", s)
	}
	return v * mul, nil
}

// ParseIpvsadmSave reads the rules `ipvsadm -Sn` and `ipvsadm-save -n`
// print (ipvsadm -R reads them back):
//
//	-A -t 203.0.113.100:80 -s rr
//	-a -t 203.0.113.100:80 -r 198.18.0.2:80 -m -w 1
//	-A -u 203.0.113.100:53 -s sh -p 300 -M 255.255.255.0
//	-A -f 1 -s wlc -p 300
//	-a -f 1 -r 198.18.0.2:0 -g -w 1
//	-A --sctp-service 203.0.113.100:9 -s rr -b flag-1 ops
//
// It also takes the long options and the commands ipvsadm -R knows
// (-E, -e, -D, -d, -C), applied in order, so a hand-written restore
// file reads too. ActiveC, InactiveC and PersistC are -1: rules carry
// no counters. A real server without -g, -i or -m is direct routing,
// ipvsadm's default.
func ParseIpvsadmSave(r io.Reader) (*Table, error) {
	const src = "ipvsadm -Sn"
	t := &Table{Services: []Service{}}
	sc := newScanner(r)
	n := 0
	for sc.Scan() {
		n++
		l := &lineErr{src: src, n: n, text: sc.Text()}
		f := strings.Fields(l.text)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if err := applyRule(t, f); err != nil {
			return t, l.errf("%v", err)
		}
	}
	if err := sc.Err(); err != nil {
		return t, scanErr(src, n, err)
	}
	return t, nil
}

type rule struct {
	cmd        string // A E D a e d C
	svc        Service
	haveSvc    bool
	sched      string
	persistent bool
	timeout    uint32
	netmask    string
	flags      []string
	pe         string
	dest       Dest
	haveDest   bool
	forward    string
	weight     int
	haveWeight bool
	destNoPort netip.Addr
}

// DefaultPersistence is ipvsadm's persistence timeout for -p without a
// value, IPVS_SVC_PERSISTENT_TIMEOUT in seconds (ipvsadm(8) says 300;
// the code, parse_timeout in ipvsadm.c, uses 360).
const DefaultPersistence = 360

func applyRule(t *Table, f []string) error {
	var r rule
	r.weight = 1
	for i := 0; i < len(f); i++ {
		o := f[i]
		arg := func() (string, error) {
			if i+1 >= len(f) || (strings.HasPrefix(f[i+1], "-") && len(f[i+1]) > 1) {
				return "", errorf("%s needs a value", o)
			}
			i++
			return f[i], nil
		}
		setCmd := func(c string) error {
			if r.cmd != "" {
				return errorf("two commands (-%s and %s) in one rule", r.cmd, o)
			}
			r.cmd = c
			return nil
		}
		var err error
		switch o {
		case "-A", "--add-service":
			err = setCmd("A")
		case "-E", "--edit-service":
			err = setCmd("E")
		case "-D", "--delete-service":
			err = setCmd("D")
		case "-a", "--add-server":
			err = setCmd("a")
		case "-e", "--edit-server":
			err = setCmd("e")
		case "-d", "--delete-server":
			err = setCmd("d")
		case "-C", "--clear":
			err = setCmd("C")
		case "-t", "--tcp-service", "-u", "--udp-service", "--sctp-service", "-f", "--fwmark-service":
			if r.haveSvc {
				return errorf("two service addresses in one rule")
			}
			var v string
			if v, err = arg(); err != nil {
				return err
			}
			r.haveSvc = true
			switch o {
			case "-f", "--fwmark-service":
				m, perr := strconv.ParseUint(v, 10, 32)
				if perr != nil || m == 0 {
					return errorf("fwmark %q: want a number > 0", v)
				}
				r.svc.Proto, r.svc.Mark = "fwmark", uint32(m)
			default:
				r.svc.Proto = map[string]string{"-t": "tcp", "--tcp-service": "tcp", "-u": "udp",
					"--udp-service": "udp", "--sctp-service": "sctp"}[o]
				a, v6, aerr := parseNumericAddrPort(v)
				if aerr != nil {
					return aerr
				}
				r.svc.Addr, r.svc.IPv6 = a, v6
			}
		case "-6", "--ipv6":
			r.svc.IPv6 = true
		case "-s", "--scheduler":
			r.sched, err = arg()
		case "-p", "--persistent":
			r.persistent, r.timeout = true, DefaultPersistence
			if i+1 < len(f) && isDigits(f[i+1]) {
				i++
				v, perr := strconv.ParseUint(f[i], 10, 32)
				if perr != nil || v == 0 {
					return errorf("persistence timeout %q: want seconds > 0", f[i])
				}
				r.timeout = uint32(v)
			}
		case "-M", "--netmask":
			var v string
			if v, err = arg(); err == nil {
				r.netmask, err = parseMask(v, r.svc.IPv6)
			}
		case "-b", "--sched-flags":
			var v string
			if v, err = arg(); err == nil {
				for _, fl := range strings.Split(v, ",") {
					if fl != "" {
						r.flags = append(r.flags, fl)
					}
				}
			}
		case "-o", "--ops", "ops":
			r.flags = append(r.flags, "ops")
		case "pe", "--pe":
			r.pe, err = arg()
		case "-r", "--real-server":
			var v string
			if v, err = arg(); err != nil {
				return err
			}
			a, _, aerr := parseNumericAddrPort(v)
			if aerr != nil {
				// a real server without a port gets the service's port
				ad, perr := netip.ParseAddr(strings.Trim(v, "[]"))
				if perr != nil {
					return aerr
				}
				r.destNoPort = ad
			}
			r.haveDest = true
			r.dest.Addr = a
		case "-g", "--gatewaying":
			r.forward = "route"
		case "-m", "--masquerading":
			r.forward = "masq"
		case "-i", "--ipip":
			r.forward = "tunnel"
		case "-w", "--weight":
			var v string
			if v, err = arg(); err == nil {
				r.weight, err = atoiRange(v, 0, 65535)
				r.haveWeight = true
			}
		case "-x", "--u-threshold", "-y", "--l-threshold":
			var v string
			if v, err = arg(); err == nil {
				var x int
				x, err = atoiRange(v, 0, 1<<31-1)
				if o == "-x" || o == "--u-threshold" {
					r.dest.UThreshold = uint32(x)
				} else {
					r.dest.LThreshold = uint32(x)
				}
			}
		case "--tun-type":
			r.dest.Tunnel, err = arg()
		case "--tun-port":
			_, err = arg()
		case "--tun-nocsum", "--tun-csum", "--tun-remcsum":
		default:
			return errorf("unknown option %q", o)
		}
		if err != nil {
			return err
		}
	}
	if r.cmd == "" {
		return errorf("no command: a rule starts with -A, -E, -D, -a, -e, -d or -C")
	}
	if r.cmd == "C" {
		t.Services = t.Services[:0]
		return nil
	}
	if !r.haveSvc {
		return errorf("no service: give -t, -u, --sctp-service or -f")
	}
	if r.svc.Proto == "fwmark" {
		r.svc.Addr = ""
	}
	s := t.Find(r.svc.Proto, r.svc.Addr, r.svc.Mark)
	if r.haveDest {
		// ipvsadm gives a real server without a port the service's
		// port, and so does it for direct routing and tunnelling.
		vport := uint16(0)
		if ap, err := netip.ParseAddrPort(r.svc.Addr); err == nil {
			vport = ap.Port()
		}
		if r.destNoPort.IsValid() {
			r.dest.Addr = netip.AddrPortFrom(r.destNoPort.Unmap(), vport).String()
		}
		if r.svc.Proto != "fwmark" && (r.forward == "route" || r.forward == "tunnel" || (r.forward == "" && r.cmd == "a")) {
			if ap, err := netip.ParseAddrPort(r.dest.Addr); err == nil {
				r.dest.Addr = netip.AddrPortFrom(ap.Addr(), vport).String()
			}
		}
	}
	switch r.cmd {
	case "A", "E":
		if r.haveDest {
			return errorf("-r belongs to -a/-e, not to -%s", r.cmd)
		}
		if r.cmd == "A" && s != nil {
			return errorf("service %s is added twice", s)
		}
		if r.cmd == "E" && s == nil {
			return errorf("-E of service %s that was not added", r.svc.String())
		}
		if s == nil {
			t.Services = append(t.Services, Service{Proto: r.svc.Proto, Addr: r.svc.Addr, Mark: r.svc.Mark,
				IPv6: r.svc.IPv6, Scheduler: "wlc", Dests: []Dest{}})
			s = &t.Services[len(t.Services)-1]
		}
		if r.sched != "" {
			s.Scheduler = r.sched
		}
		s.Persistent, s.Timeout, s.Flags, s.PE = r.persistent, r.timeout, r.flags, r.pe
		s.Netmask = ""
		if r.persistent {
			s.Netmask = defaultMask(s.IPv6)
			if r.netmask != "" {
				s.Netmask = r.netmask
			}
		}
	case "D":
		if s == nil {
			return errorf("-D of service %s that was not added", r.svc.String())
		}
		key := s.String()
		t.Services = slices.DeleteFunc(t.Services, func(x Service) bool { return x.String() == key })
	case "a", "e", "d":
		if s == nil {
			return errorf("real server for service %s that was not added (-A must come first)", r.svc.String())
		}
		if !r.haveDest {
			return errorf("-%s needs -r RIP:PORT", r.cmd)
		}
		if r.sched != "" || r.persistent {
			return errorf("-s and -p belong to -A/-E, not to -%s", r.cmd)
		}
		d := s.Dest(r.dest.Addr)
		switch r.cmd {
		case "a":
			if d != nil {
				return errorf("real server %s is added twice to %s", r.dest.Addr, s)
			}
			nd := r.dest
			nd.Forward = r.forward
			if nd.Forward == "" {
				nd.Forward = "route"
			}
			nd.Weight, nd.ActiveC, nd.InactiveC, nd.PersistC = r.weight, -1, -1, -1
			s.Dests = append(s.Dests, nd)
		case "e":
			if d == nil {
				return errorf("-e of real server %s not in %s", r.dest.Addr, s)
			}
			if r.forward != "" {
				d.Forward = r.forward
			}
			if r.haveWeight {
				d.Weight = r.weight
			}
			d.UThreshold, d.LThreshold = r.dest.UThreshold, r.dest.LThreshold
		case "d":
			if d == nil {
				return errorf("-d of real server %s not in %s", r.dest.Addr, s)
			}
			addr := d.Addr
			s.Dests = slices.DeleteFunc(s.Dests, func(x Dest) bool { return x.Addr == addr })
		}
	}
	return nil
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
