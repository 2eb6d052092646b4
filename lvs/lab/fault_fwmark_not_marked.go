package lab

// fwmark-not-marked (HOWTO Q.3 A.5): a firewall-mark service whose marking
// rule does not match the traffic.
//
//   - removed (default): the rule that marks tcp VIP:8080 is deleted.
//   - wrong-port: it is replaced by one for VIP:8081 (counter included),
//     which matches nothing the clients send.
//
// The packets to VIP:8080 then carry no mark, no balancing rule matches
// them, and the director's own stack answers (RST: nothing listens there),
// as for a missing service.

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/nftables"
)

// FwmarkWrongPortComment starts the comment of the wrong-port variant's
// marking rule.
const FwmarkWrongPortComment = FaultCommentPrefix + "fwmark-not-marked: "

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: "fwmark-not-marked",
			Summary:  "delete the firewall-mark service's marking rule (wrong-port: mark VIP:8081 instead)",
			Variants: []string{"removed", "wrong-port"}},
		hostKind: RoleDirector,
		inject:   injectFwmarkNotMarked,
	})
}

func injectFwmarkNotMarked(ctx context.Context, e *env, h *Host, variant string) error {
	var svc Service
	for _, s := range e.st.Services {
		if s.Proto == "fwmark" {
			svc = s
		}
	}
	if svc.Proto == "" {
		return fmt.Errorf("%w: this lab has no firewall-mark service", ErrBadFault)
	}
	c, err := nftConn(e.handle(h.Role))
	if err != nil {
		return err
	}
	// The marking rules: mangle (and mangle_out) under conntrack NAT,
	// prerouting (raw priority) in the stateless datapath.
	chains := []string{NftMangle, NftMangleOut}
	if e.st.Options.Datapath == DatapathNftStateless {
		chains = []string{NftPrerouting}
	}
	t := labTable()
	var found []*nftables.Rule
	var where []string
	for _, ch := range chains {
		rules, err := findRules(c, ch, MarkComment(svc))
		if err != nil {
			if ch == NftMangleOut {
				continue
			}
			return err
		}
		for _, r := range rules {
			found = append(found, r)
			where = append(where, ch)
		}
	}
	if len(found) == 0 {
		return fmt.Errorf("director has no marking rule %q", MarkComment(svc))
	}
	for i, r := range found {
		if variant == "wrong-port" {
			wrong := svc
			wrong.Port++
			nr := markRule(t, labChain(t, where[i]), wrong)
			nr.UserData = comment(FwmarkWrongPortComment + strings.TrimPrefix(MarkComment(wrong), CommentPrefix))
			nr.Position = r.Handle
			c.InsertRule(nr)
		}
		if err := c.DelRule(r); err != nil {
			return err
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	for _, ch := range chains {
		if left, err := findRules(c, ch, MarkComment(svc)); err == nil && len(left) > 0 {
			return fmt.Errorf("marking rule still present in %s", ch)
		}
	}
	return nil
}
