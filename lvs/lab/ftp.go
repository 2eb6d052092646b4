package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// FTP timeouts: how long a control connection may stay idle, and how long
// the server waits for the client's data connection after PASV.
const (
	ftpIdle     = 30 * time.Second
	ftpDataWait = 10 * time.Second
)

// ServeFTP runs lvsdoctor's minimal FTP server on addr until ctx ends: a
// 220 greeting, USER and PASS accepted, PASV answered "227 Entering
// Passive Mode (h1,h2,h3,h4,p1,p2)" with the address the control
// connection arrived on (the RIP behind a NAT director) and a port it
// listens on, LIST/NLST/RETR sending one line ("NAME") over the data
// connection, QUIT. Enough for a test through NAT: the director's FTP
// helper must rewrite the 227 reply to the VIP and let the data connection
// in.
func ServeFTP(ctx context.Context, addr, name string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	go func() { <-ctx.Done(); ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ftpSession(ctx, c, name)
		}()
	}
}

func ftpSession(ctx context.Context, c net.Conn, name string) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	r := bufio.NewReaderSize(c, 1024)
	say := func(format string, args ...any) error {
		_ = c.SetWriteDeadline(time.Now().Add(ftpIdle))
		_, err := fmt.Fprintf(c, format+"\r\n", args...)
		return err
	}
	var data net.Listener
	defer func() {
		if data != nil {
			data.Close()
		}
	}()
	if say("220 lvsdoctor FTP (%s) ready", name) != nil {
		return
	}
	for {
		_ = c.SetReadDeadline(time.Now().Add(ftpIdle))
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		var werr error
		switch strings.ToUpper(cmd) {
		case "USER":
			werr = say("331 Password required for %s", arg)
		case "PASS":
			werr = say("230 Logged in")
		case "SYST":
			werr = say("215 UNIX Type: L8")
		case "TYPE", "MODE", "STRU", "NOOP":
			werr = say("200 OK")
		case "PWD":
			werr = say(`257 "/" is the current directory`)
		case "CWD":
			werr = say("250 OK")
		case "PASV":
			if data != nil {
				data.Close()
				data = nil
			}
			la, ok := c.LocalAddr().(*net.TCPAddr)
			ip := net.IP(nil)
			if ok {
				ip = la.IP.To4()
			}
			if ip == nil {
				werr = say("425 Cannot open a passive connection")
				break
			}
			ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: ip})
			if err != nil {
				werr = say("425 Cannot open a passive connection: %v", err)
				break
			}
			data = ln
			p := ln.Addr().(*net.TCPAddr).Port
			werr = say("227 Entering Passive Mode (%d,%d,%d,%d,%d,%d)", ip[0], ip[1], ip[2], ip[3], p>>8, p&0xff)
		case "LIST", "NLST", "RETR":
			if data == nil {
				werr = say("425 Use PASV first")
				break
			}
			if werr = say("150 Opening data connection"); werr != nil {
				break
			}
			werr = ftpSend(data, name+"\r\n")
			data.Close()
			data = nil
			if werr != nil {
				werr = say("425 Data connection failed: %v", werr)
			} else {
				werr = say("226 Transfer complete")
			}
		case "QUIT":
			_ = say("221 Bye")
			return
		default:
			werr = say("502 %s not implemented", cmd)
		}
		if werr != nil {
			return
		}
	}
}

// ftpSend accepts one data connection on ln and writes s to it.
func ftpSend(ln net.Listener, s string) error {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return errors.New("not a TCP listener")
	}
	_ = tl.SetDeadline(time.Now().Add(ftpDataWait))
	d, err := tl.Accept()
	if err != nil {
		return err
	}
	defer d.Close()
	_ = d.SetDeadline(time.Now().Add(ftpDataWait))
	_, err = d.Write([]byte(s))
	return err
}
