// Package routeget asks the kernel's FIB `ip route get DST [from SRC]
// [iif IIF]` through netlink, in the process's own namespace.
package routeget

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// RTCFRedirected is the kernel's RTCF_REDIRECTED, passed back in rtm_flags
// (netlink.Route.Flags) for a route learnt from an ICMP redirect.
const RTCFRedirected = 0x00040000

// Run answers a route question. Errors (ENETUNREACH for a non-local
// source, for instance) go to RouteGet.Error as the errno text.
func Run(ctx context.Context, a obs.RouteGetArgs) obs.RouteGet { return RunOn(ctx, nil, a) }

// RunOn is Run with the lookup on nl, a route-netlink handle of this
// namespace that an agent keeps for the host (nil: a socket for this
// lookup alone).
func RunOn(ctx context.Context, nl *netlink.Handle, a obs.RouteGetArgs) obs.RouteGet {
	if nl == nil {
		nl = &netlink.Handle{}
	}
	res := obs.RouteGet{Dst: a.Dst, Src: a.Src, Iif: a.Iif}
	if err := ctx.Err(); err != nil {
		res.Error = err.Error()
		return res
	}
	dst := net.ParseIP(a.Dst)
	if dst == nil || dst.To4() == nil {
		res.Error = "invalid IPv4 destination: " + a.Dst
		return res
	}
	opts := &netlink.RouteGetOptions{Iif: a.Iif}
	if a.Src != "" {
		src := net.ParseIP(a.Src)
		if src == nil || src.To4() == nil {
			res.Error = "invalid IPv4 source: " + a.Src
			return res
		}
		opts.SrcAddr = src.To4()
	}
	routes, err := nl.RouteGetWithOptions(dst.To4(), opts)
	if err != nil {
		res.Error = errText(err)
		return res
	}
	if len(routes) == 0 {
		res.Error = "no route"
		return res
	}
	r := routes[0]
	res.Type = TypeName(r.Type)
	if r.Gw != nil {
		res.Gateway = r.Gw.String()
	}
	if r.LinkIndex > 0 {
		if name, err := ifName(r.LinkIndex); err == nil {
			res.Dev = name
		} else if ifc, err := net.InterfaceByIndex(r.LinkIndex); err == nil {
			res.Dev = ifc.Name
		}
	}
	if r.Src != nil {
		res.PrefSrc = r.Src.String()
	}
	res.Flags = Flags(r.Flags)
	return res
}

// ifName is the name of interface index in this namespace, asked with
// SIOCGIFNAME: a netlink link request would take a socket of its own and
// a message the size of the link's whole description, for every lookup
// (a hundred of them at fifty real servers).
func ifName(index int) (string, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return "", err
	}
	ifr.SetUint32(uint32(index))
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFNAME, ifr); err != nil {
		return "", err
	}
	return ifr.Name(), nil
}

// Flags renders the rtm_flags ip(8) prints for a cached route.
func Flags(f int) string {
	var out []string
	if f&RTCFRedirected != 0 {
		out = append(out, "redirected")
	}
	return strings.Join(out, ",")
}

func errText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

// TypeName is the ip(8) name of a route type (RTN_*).
func TypeName(t int) string {
	switch t {
	case unix.RTN_UNSPEC:
		return "unspec"
	case unix.RTN_UNICAST:
		return "unicast"
	case unix.RTN_LOCAL:
		return "local"
	case unix.RTN_BROADCAST:
		return "broadcast"
	case unix.RTN_ANYCAST:
		return "anycast"
	case unix.RTN_MULTICAST:
		return "multicast"
	case unix.RTN_BLACKHOLE:
		return "blackhole"
	case unix.RTN_UNREACHABLE:
		return "unreachable"
	case unix.RTN_PROHIBIT:
		return "prohibit"
	case unix.RTN_THROW:
		return "throw"
	case unix.RTN_NAT:
		return "nat"
	case unix.RTN_XRESOLVE:
		return "xresolve"
	}
	return "type" + strconv.Itoa(t)
}
