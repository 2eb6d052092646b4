package classify

import (
	"fmt"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/lvsdoctor/lvsdoctor/lvs/tablediff"
	"github.com/lvsdoctor/lvsdoctor/lvs/topology"
	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

func init() { addRule(ruleConfigDiffers) }

// The director's IPVS table differs from what the operator configured (the
// topology, or keepalived.conf with check --keepalived): another scheduler,
// persistence on one side only, another weight, a real server or a service
// nobody configured. None of these stops a connection by itself (warning),
// but each is the director doing something else than what was meant:
// keepalived not reloaded, a hand edit, a health check that took a real
// server out. What does stop traffic has its own fault: a missing service
// (service-missing), weight 0 or a real server left out (rs-weight-zero),
// forwarding that is not NAT (forward-not-masq).
func ruleConfigDiffers(v *view) []result.Finding {
	_, t := v.ipvsTable()
	if t == nil {
		return nil
	}
	src := v.in.Topology.Source
	var out []result.Finding
	for _, d := range tablediff.Compare(v.in.Topology.Services, *t) {
		switch d.Kind {
		case tablediff.ServiceMissing, tablediff.RealServerMissing:
			continue
		case tablediff.WeightDiffers:
			if d.Have == "0" {
				continue
			}
		case tablediff.ForwardDiffers:
			if d.Want == "" || d.Want == "masq" {
				continue
			}
		case tablediff.ServiceExtra:
			// A topology file may list only the services to check.
			if src == nil || !src.Complete {
				continue
			}
		}
		f := newFinding("config-differs", v.director.Label)
		f.Service = d.Service
		f.Address = d.RealServer
		f.Summary = d.Text
		want := findConfigured(v.in.Topology.Services, d.Service)
		if is := findTable(t, d.Service); is != nil {
			f.Evidence = append(f.Evidence, ipvsadmLine(*is))
		}
		if want != nil {
			f.Evidence = append(f.Evidence, fmt.Sprintf("%s: %s %s, %d real servers", v.configName(), want, orDefault(want.Scheduler, "(no scheduler given)"), len(want.RealServers)))
		}
		f.Remedy = configRemedy(d, want, t)
		if src != nil && src.Kind == "keepalived" {
			f.Remedy = append([]string{"# keepalived owns this table: fix " + src.File + " or reload it (systemctl reload keepalived); a hand edit lasts until the next reload"}, f.Remedy...)
		}
		out = append(out, f)
	}
	return out
}

func findConfigured(svcs []topology.Service, name string) *topology.Service {
	for i := range svcs {
		if svcs[i].String() == name {
			return &svcs[i]
		}
	}
	return nil
}

// findTable finds a service of the table by its name in findings
// ("tcp 203.0.113.100:80", "fwmark 1").
func findTable(t *obs.IPVSTable, name string) *obs.IPVSService {
	for i, is := range t.Services {
		n := is.Proto + " " + is.Addr
		if is.Proto == "fwmark" {
			n = fmt.Sprintf("fwmark %d", is.Mark)
		}
		if n == name {
			return &t.Services[i]
		}
	}
	return nil
}

// configRemedy is the ipvsadm command that makes the table say what the
// configuration says (or the other way round, where the table is right).
func configRemedy(d tablediff.Difference, want *topology.Service, t *obs.IPVSTable) []string {
	is := findTable(t, d.Service)
	if is == nil {
		return nil
	}
	svc := ipvsadmService(is.Proto, is.Addr, is.Mark)
	switch d.Kind {
	case tablediff.SchedulerDiffers:
		return []string{fmt.Sprintf("ipvsadm -E %s -s %s", svc, d.Want), "# or write scheduler: " + d.Have + " in the configuration, if the table is what is meant"}
	case tablediff.PersistenceDiffer:
		if want != nil && want.Persistent {
			return []string{fmt.Sprintf("ipvsadm -E %s -s %s -p 360", svc, is.Scheduler)}
		}
		return []string{fmt.Sprintf("ipvsadm -E %s -s %s   # without -p: not persistent", svc, is.Scheduler)}
	case tablediff.WeightDiffers:
		fwd := "masq"
		for _, dst := range is.Dests {
			if dst.Addr == d.RealServer {
				fwd = dst.Forward
			}
		}
		return []string{fmt.Sprintf("ipvsadm -e %s -r %s %s -w %s", svc, d.RealServer, ipvsadmForward(fwd), d.Want)}
	case tablediff.ForwardDiffers:
		return []string{fmt.Sprintf("ipvsadm -e %s -r %s %s", svc, d.RealServer, ipvsadmForward(d.Want))}
	case tablediff.RealServerExtra:
		return []string{fmt.Sprintf("ipvsadm -d %s -r %s", svc, d.RealServer), "# or add it to the configuration: the check then probes it too"}
	case tablediff.ServiceExtra:
		return []string{fmt.Sprintf("ipvsadm -D %s", svc), "# or add it to the configuration"}
	}
	return nil
}
