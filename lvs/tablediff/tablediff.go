// Package tablediff compares the services an operator configured (a
// topology file, keepalived.conf) with the table the director really runs:
// what keepalived's health checks removed, a scheduler changed by hand, a
// real server nobody wrote down.
package tablediff

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// Kinds of Difference.
const (
	ServiceMissing    = "service-missing"
	ServiceExtra      = "service-extra"
	SchedulerDiffers  = "scheduler-differs"
	PersistenceDiffer = "persistence-differs"
	RealServerMissing = "realserver-missing"
	RealServerExtra   = "realserver-extra"
	WeightDiffers     = "weight-differs"
	ForwardDiffers    = "forward-differs"
)

// Difference is one way the director's IPVS table differs from the
// configured services.
type Difference struct {
	Kind       string `json:"kind"`
	Service    string `json:"service"`              // "tcp 203.0.113.100:80", "fwmark 1"
	RealServer string `json:"realserver,omitempty"` // RIP:RPORT
	Want       string `json:"want,omitempty"`
	Have       string `json:"have,omitempty"`
	// Text is one readable sentence.
	Text string `json:"text"`
}

func (d Difference) String() string { return d.Text }

func forwardWords(f string) string {
	switch f {
	case "masq":
		return "masq (NAT, -m)"
	case "route":
		return "route (DR, -g)"
	case "tunnel":
		return "tunnel (TUN, -i)"
	}
	return f
}

func persistWord(p bool) string {
	if p {
		return "persistent"
	}
	return "not persistent"
}

// Compare lists how the director's IPVS table (have) differs from the
// configured services (want): a service missing from the table or
// extra in it, another scheduler, persistence on one side only, a real
// server missing or extra, another weight or forwarding method. The
// order follows want, then the table's extras.
func Compare(want []topology.Service, have obs.IPVSTable) []Difference {
	var out []Difference
	used := make([]bool, len(have.Services))
	for _, w := range want {
		name := w.String()
		idx := findService(have, w)
		if idx < 0 {
			out = append(out, Difference{Kind: ServiceMissing, Service: name,
				Text: fmt.Sprintf("%s is configured but not in the director's IPVS table", name)})
			continue
		}
		used[idx] = true
		h := have.Services[idx]
		if w.Scheduler != "" && h.Scheduler != "" && w.Scheduler != h.Scheduler {
			out = append(out, Difference{Kind: SchedulerDiffers, Service: name, Want: w.Scheduler, Have: h.Scheduler,
				Text: fmt.Sprintf("%s runs scheduler %s in the IPVS table, configured %s", name, h.Scheduler, w.Scheduler)})
		}
		if w.Persistent != h.Persistent {
			out = append(out, Difference{Kind: PersistenceDiffer, Service: name, Want: persistWord(w.Persistent), Have: persistWord(h.Persistent),
				Text: fmt.Sprintf("%s is %s in the IPVS table, configured %s", name, persistWord(h.Persistent), persistWord(w.Persistent))})
		}
		dused := make([]bool, len(h.Dests))
		for _, r := range w.RealServers {
			j := findDest(h, r.Address)
			if j < 0 {
				out = append(out, Difference{Kind: RealServerMissing, Service: name, RealServer: r.Address,
					Text: fmt.Sprintf("real server %s of %s is configured but not in the IPVS table (keepalived removes a real server whose health check fails, unless inhibit_on_failure)", r.Address, name)})
				continue
			}
			dused[j] = true
			d := h.Dests[j]
			if ww := r.W(); d.Weight >= 0 && ww != d.Weight {
				text := fmt.Sprintf("real server %s of %s has weight %d in the IPVS table, configured %d", r.Address, name, d.Weight, ww)
				if d.Weight == 0 {
					text += " (weight 0 takes no new connections; keepalived sets it when a health check fails with inhibit_on_failure)"
				}
				out = append(out, Difference{Kind: WeightDiffers, Service: name, RealServer: r.Address,
					Want: fmt.Sprint(ww), Have: fmt.Sprint(d.Weight), Text: text})
			}
			if r.Forward != "" && d.Forward != "" && r.Forward != d.Forward {
				out = append(out, Difference{Kind: ForwardDiffers, Service: name, RealServer: r.Address, Want: r.Forward, Have: d.Forward,
					Text: fmt.Sprintf("real server %s of %s is forwarded by %s in the IPVS table, configured %s", r.Address, name, forwardWords(d.Forward), forwardWords(r.Forward))})
			}
		}
		for j, d := range h.Dests {
			if !dused[j] {
				out = append(out, Difference{Kind: RealServerExtra, Service: name, RealServer: d.Addr,
					Text: fmt.Sprintf("real server %s of %s is in the IPVS table but not configured (a keepalived sorry_server appears when all real servers are down)", d.Addr, name)})
			}
		}
	}
	for i, h := range have.Services {
		if !used[i] {
			name := obsName(h)
			out = append(out, Difference{Kind: ServiceExtra, Service: name,
				Text: fmt.Sprintf("%s is in the IPVS table but not configured", name)})
		}
	}
	return out
}

func obsName(s obs.IPVSService) string {
	if s.Proto == "fwmark" {
		return fmt.Sprintf("fwmark %d", s.Mark)
	}
	return s.Proto + " " + s.Addr
}

func findService(have obs.IPVSTable, w topology.Service) int {
	return slices.IndexFunc(have.Services, func(h obs.IPVSService) bool {
		if w.Proto == "fwmark" || h.Proto == "fwmark" {
			return w.Proto == h.Proto && w.Mark == h.Mark
		}
		return w.Proto == h.Proto && sameAddrPort(w.VIP, h.Addr)
	})
}

func findDest(h obs.IPVSService, addr string) int {
	return slices.IndexFunc(h.Dests, func(d obs.IPVSDest) bool { return sameAddrPort(d.Addr, addr) })
}

func sameAddrPort(a, b string) bool {
	if a == b {
		return true
	}
	x, err1 := netip.ParseAddrPort(a)
	y, err2 := netip.ParseAddrPort(b)
	return err1 == nil && err2 == nil && netip.AddrPortFrom(x.Addr().Unmap(), x.Port()) == netip.AddrPortFrom(y.Addr().Unmap(), y.Port())
}
