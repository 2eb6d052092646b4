// Package classify turns what the probes saw into findings. It is a pure
// function of its Input: no host is touched here, so every fault can be
// tested from recorded observations (fixtures/) without root, and the same
// rules judge a lab, a recording and a production cluster alike.
package classify

import (
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// Roles of a host in the cluster.
const (
	RoleClient     = "client"
	RoleDirector   = "director"
	RoleRealServer = "realserver"
)

// Input is everything the check observed, as plain data.
type Input struct {
	Topology *topology.Topology `json:"topology"`
	// Hosts by label (DESIGN.md: a host's name, else its host string).
	Hosts    map[string]*Host `json:"hosts"`
	Services []ServiceRun     `json:"services"`
	// Static is set when no test traffic was sent (--static): only the
	// static picture is judged.
	Static bool `json:"static,omitempty"`
}

// Host is one host's observations. A nil field was not measured; Error
// says why when the host could not be reached at all.
type Host struct {
	Label   string `json:"label"`
	Spec    string `json:"spec"`
	Role    string `json:"role"`
	Address string `json:"address,omitempty"` // CIP for the client, RIP for a real server
	Error   string `json:"error,omitempty"`

	Before  *obs.Facts   `json:"before,omitempty"`
	After   *obs.Facts   `json:"after,omitempty"`
	Capture *obs.Capture `json:"capture,omitempty"`
	// Q.1 and Q.2 from a real server to the client, and route lookups
	// (`ip route get CIP from RIP` on a real server; the director's view
	// of the client and of each RIP).
	Ping      *obs.Ping      `json:"ping,omitempty"`
	Trace     *obs.Trace     `json:"trace,omitempty"`
	RouteGets []obs.RouteGet `json:"routegets,omitempty"`

	flows map[flowKey][]*obs.Packet // flowIndex's cache
}

// ServiceRun is one virtual service and the test connections made to it.
type ServiceRun struct {
	Service topology.Service `json:"service"`
	Conns   []obs.Conn       `json:"conns"`
	Error   string           `json:"error,omitempty"` // the client could not run them
}

// Reached says the host answered; its facts exist.
func (h *Host) Reached() bool { return h != nil && h.Error == "" && h.Before != nil }

// Facts is the latest picture of the host: what was read after the test,
// and for the parts not read again (addresses, routes, sysctls, sockets)
// what was read before it.
func (h *Host) Facts() *obs.Facts {
	if h == nil {
		return nil
	}
	if h.After == nil || h.Before == nil {
		if h.After != nil {
			return h.After
		}
		return h.Before
	}
	f := *h.After
	b := h.Before
	if f.Links == nil {
		f.Links = b.Links
	}
	if f.Addrs == nil {
		f.Addrs = b.Addrs
	}
	if f.Routes == nil {
		f.Routes = b.Routes
	}
	if f.Neigh == nil {
		f.Neigh = b.Neigh
	}
	if f.Sysctls == nil {
		f.Sysctls = b.Sysctls
	}
	if f.Counters == nil {
		f.Counters = b.Counters
	}
	if f.NftChains == nil {
		f.NftChains = b.NftChains
	}
	if f.NftRules == nil {
		f.NftRules = b.NftRules
	}
	if f.IptablesSave == "" {
		f.IptablesSave = b.IptablesSave
	}
	if f.Conntrack == nil {
		f.Conntrack = b.Conntrack
	}
	if f.Listeners == nil {
		f.Listeners = b.Listeners
	}
	if f.IPVS == nil {
		f.IPVS = b.IPVS
	} else if f.IPVS.Timeouts == nil && b.IPVS != nil && b.IPVS.Timeouts != nil {
		// Timeouts are static (read before the test only).
		t := *f.IPVS
		t.Timeouts = b.IPVS.Timeouts
		f.IPVS = &t
	}
	if f.Modules == nil {
		f.Modules = b.Modules
	}
	if f.Kernel == "" {
		f.Kernel = b.Kernel
	}
	if f.Datapath == "" {
		f.Datapath = b.Datapath
	}
	return &f
}
