package connect

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/lvsdoctor/lvsdoctor/probes/obs"
)

// AppFTP is obs.ConnectArgs.App for an FTP test: what an FTP client does
// through a NAT director, whose FTP helper must rewrite the 227 reply and
// let the data connection in.
const AppFTP = "ftp"

// pasvRE finds h1,h2,h3,h4,p1,p2 in a 227 reply.
var pasvRE = regexp.MustCompile(`(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})`)

// ParsePASV reads the address of a 227 reply ("227 Entering Passive Mode
// (h1,h2,h3,h4,p1,p2)") as IP:PORT.
func ParsePASV(line string) (string, error) {
	m := pasvRE.FindStringSubmatch(line)
	if m == nil {
		return "", fmt.Errorf("no h1,h2,h3,h4,p1,p2 in %q", line)
	}
	var n [6]int
	for i := range n {
		v, err := strconv.Atoi(m[i+1])
		if err != nil || v > 255 {
			return "", fmt.Errorf("bad number %q in %q", m[i+1], line)
		}
		n[i] = v
	}
	ip := net.IPv4(byte(n[0]), byte(n[1]), byte(n[2]), byte(n[3]))
	return net.JoinHostPort(ip.String(), strconv.Itoa(n[4]<<8|n[5])), nil
}

// ftpErr is a reply the exchange did not expect.
type ftpErr struct{ line string }

func (e ftpErr) Error() string { return "unexpected reply: " + e.line }

// ftp runs the FTP exchange on an established control connection: the
// greeting, USER/PASS, PASV, the data connection to the address of the
// 227 reply (data: a socket bound like the control connection's, made in
// the caller's namespace), NLST, QUIT.
// c.Response is the 227 reply; c.Data says how the data connection went.
// The test is ok only when a line came over the data connection.
func ftp(c *obs.Conn, nc net.Conn, data *os.File, deadline time.Time) {
	r := bufio.NewReaderSize(io.LimitReader(nc, 64<<10), maxLine)
	fail := func(err error) {
		var fe ftpErr
		if errors.As(err, &fe) {
			c.Result, c.Error = Error, err.Error()
			return
		}
		c.Result, c.Error = classify(err), err.Error()
		if c.Result == Timeout && c.Response == "" {
			c.Error = "connected, no FTP answer before the timeout: " + err.Error()
		}
	}
	// reply reads one reply (the last line of a multi-line one).
	reply := func() (int, string, error) {
		for {
			ln, err := r.ReadString('\n')
			if err != nil {
				if len(ln) == 0 {
					return 0, "", err
				}
			}
			ln = strings.TrimRight(ln, "\r\n")
			if len(ln) >= 4 && ln[3] == '-' {
				continue
			}
			code, cerr := strconv.Atoi(ln[:min(3, len(ln))])
			if cerr != nil {
				return 0, ln, ftpErr{ln}
			}
			return code, ln, err
		}
	}
	say := func(cmd string) error {
		_, err := io.WriteString(nc, cmd+"\r\n")
		return err
	}
	step := func(cmd string, want ...int) (string, error) {
		if cmd != "" {
			if err := say(cmd); err != nil {
				return "", err
			}
		}
		code, ln, err := reply()
		if err != nil {
			return ln, err
		}
		for _, w := range want {
			if code == w {
				return ln, nil
			}
		}
		return ln, ftpErr{ln}
	}
	if _, err := step("", 220); err != nil {
		fail(err)
		return
	}
	ln, err := step("USER anonymous", 230, 331)
	if err != nil {
		fail(err)
		return
	}
	if strings.HasPrefix(ln, "331") {
		if _, err := step("PASS lvsdoctor@", 230); err != nil {
			fail(err)
			return
		}
	}
	pasv, err := step("PASV", 227)
	if err != nil {
		fail(err)
		return
	}
	c.Response = firstLine([]byte(pasv))
	addr, err := ParsePASV(pasv)
	if err != nil {
		fail(err)
		return
	}
	d := &obs.DataConn{Addr: addr}
	c.Data = d
	start := time.Now()
	fail2 := func(err error) {
		d.Result, d.Error, d.Took = classify(err), err.Error(), time.Since(start)
		c.Result = d.Result
		c.Error = fmt.Sprintf("data connection to %s (from the 227 reply): %v", addr, err)
		_ = say("QUIT")
	}
	if data == nil {
		fail2(errors.New("no socket for the data connection"))
		d.Result, c.Result = Error, Error
		return
	}
	dst, err := parseAddr(addr)
	if err != nil {
		fail2(err)
		return
	}
	_ = data.SetDeadline(deadline)
	dc, err := connectFile(data, "tcp", dst, &d.Local)
	if err != nil {
		fail2(err)
		return
	}
	defer dc.Close()
	_ = dc.SetDeadline(deadline)
	if _, err := step("NLST", 150, 125); err != nil {
		d.Result, d.Error, d.Took = Error, "NLST: "+err.Error(), time.Since(start)
		fail(err)
		return
	}
	b, err := io.ReadAll(io.LimitReader(dc, maxLine))
	d.Took = time.Since(start)
	if err != nil || len(b) == 0 {
		if err == nil {
			err = errors.New("the data connection closed without a line")
		}
		d.Result, d.Error = classify(err), err.Error()
		c.Result, c.Error = d.Result, fmt.Sprintf("data connection to %s: %v", addr, err)
		return
	}
	d.Result = OK
	if _, err := step("", 226, 250); err != nil {
		fail(err)
		return
	}
	_ = say("QUIT")
	c.Result = OK
}
