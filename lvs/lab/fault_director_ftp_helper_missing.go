package lab

// director-ftp-helper-missing (FTP notes): the FTP service is NATed without
// the FTP helper. The rule that attaches the ct helper to the FTP
// service's control connections and the helper object are deleted, so the
// real server's 227 reply reaches the client with the RIP in it, and the
// client's data connection to that address fails (the client has no route
// to the private LAN). The control connection still works. Clear restores
// the datapath.

import (
	"context"
	"fmt"

	"github.com/google/nftables"
)

func init() {
	register(&fault{
		FaultInfo: FaultInfo{ID: "director-ftp-helper-missing",
			Summary: "delete the director's FTP helper (ct helper rule and object)"},
		hostKind: RoleDirector,
		inject: func(ctx context.Context, e *env, h *Host, _ string) error {
			if !hasFTP(e.st) {
				return fmt.Errorf("%w: this lab has no FTP service (datapath %s); build one with --datapath nft", ErrBadFault, e.st.Options.Datapath)
			}
			c, err := nftConn(e.handle(h.Role))
			if err != nil {
				return err
			}
			n := 0
			for _, ch := range []string{NftMangle, NftMangleOut} {
				rules, err := findRules(c, ch, CommentPrefix+"ftp helper")
				if err != nil {
					if ch == NftMangleOut {
						continue // only in client-on-director labs
					}
					return err
				}
				for _, r := range rules {
					if err := c.DelRule(r); err != nil {
						return err
					}
					n++
				}
			}
			if n == 0 {
				return fmt.Errorf("director has no FTP helper rule")
			}
			if err := c.Flush(); err != nil {
				return fmt.Errorf("nftables: delete the helper rules: %w", err)
			}
			c.DeleteObject(&nftables.NamedObj{Table: labTable(), Name: NftFTPHelper, Type: nftables.ObjTypeCtHelper})
			if err := c.Flush(); err != nil {
				return fmt.Errorf("nftables: delete the ct helper %s: %w", NftFTPHelper, err)
			}
			if left, err := findRules(c, NftMangle, CommentPrefix+"ftp helper"); err != nil || len(left) > 0 {
				return fmt.Errorf("FTP helper rule still present (%v)", err)
			}
			return nil
		},
	})
}
