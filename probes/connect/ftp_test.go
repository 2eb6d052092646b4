package connect

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lvsdoctor/lvsdoctor/probes/obs"
	"github.com/lvsdoctor/lvsdoctor/probes/testenv"
)

func TestParsePASV(t *testing.T) {
	for in, want := range map[string]string{
		"227 Entering Passive Mode (198,18,0,2,181,71)":   "198.18.0.2:46407",
		"227 Entering Passive Mode (203,0,113,100,0,21).": "203.0.113.100:21",
		"227 =10,0,0,1,4,1": "10.0.0.1:1025",
	} {
		if got, err := ParsePASV(in); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"227 Entering Passive Mode", "227 (1,2,3,999,1,1)"} {
		if _, err := ParsePASV(in); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
}

// ftpServer serves one FTP session at a time on B:2121; PASV names
// announce (B's address when empty) and the port of a data listener made
// in B's namespace up front.
func ftpServer(t *testing.T, ns interface{ Do(func() error) error }, bAddr, announce string) {
	t.Helper()
	var ctl, data net.Listener
	if err := ns.Do(func() error {
		var err error
		if ctl, err = net.Listen("tcp4", bAddr+":2121"); err != nil {
			return err
		}
		data, err = net.Listen("tcp4", bAddr+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close(); data.Close() })
	if announce == "" {
		announce = bAddr
	}
	port := data.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := ctl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				fmt.Fprintf(c, "220-welcome\r\n220 ready\r\n")
				for {
					ln, err := r.ReadString('\n')
					if err != nil {
						return
					}
					switch cmd, _, _ := strings.Cut(strings.TrimSpace(ln), " "); cmd {
					case "USER":
						fmt.Fprintf(c, "331 password\r\n")
					case "PASS":
						fmt.Fprintf(c, "230 ok\r\n")
					case "PASV":
						fmt.Fprintf(c, "227 Entering Passive Mode (%s,%d,%d)\r\n", strings.ReplaceAll(announce, ".", ","), port>>8, port&255)
					case "NLST":
						fmt.Fprintf(c, "150 here\r\n")
						d, err := data.Accept()
						if err != nil {
							return
						}
						d.Write([]byte("b\r\n"))
						d.Close()
						fmt.Fprintf(c, "226 done\r\n")
					case "QUIT":
						fmt.Fprintf(c, "221 bye\r\n")
						return
					}
				}
			}()
		}
	}()
}

func TestFTP(t *testing.T) {
	testenv.RequireRoot(t)
	p := setup(t)
	ftpServer(t, p.B, p.BAddr, "")
	r := run(t, p.A, obs.ConnectArgs{Proto: "tcp", Src: p.AAddr, Dst: p.BAddr + ":2121", Count: 2, App: AppFTP})
	for _, c := range r.Conns {
		if c.Result != OK || c.Data == nil || c.Data.Result != OK || !strings.HasPrefix(c.Response, "227 ") ||
			c.Data.Addr != net.JoinHostPort(p.BAddr, strings.Split(c.Data.Addr, ":")[1]) || !strings.HasPrefix(c.Data.Local, p.AAddr+":") {
			t.Errorf("%+v data %+v", c, c.Data)
		}
	}
}

// A 227 reply naming an address the client cannot reach (what a NAT
// director without the FTP helper passes on): the control connection
// works, the data connection times out, and the address is reported.
func TestFTPDataUnreachable(t *testing.T) {
	testenv.RequireRoot(t)
	p := setup(t)
	ftpServer(t, p.B, p.BAddr, "203.0.113.7") // routed into B's black hole
	start := time.Now()
	r := run(t, p.A, obs.ConnectArgs{Proto: "tcp", Src: p.AAddr, Dst: p.BAddr + ":2121", Timeout: 400 * time.Millisecond, App: AppFTP})
	c := r.Conns[0]
	if c.Result != Timeout || c.Data == nil || c.Data.Result != Timeout || !strings.HasPrefix(c.Data.Addr, "203.0.113.7:") {
		t.Errorf("%+v data %+v", c, c.Data)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestConnectBadApp(t *testing.T) {
	r := Run(t.Context(), obs.ConnectArgs{Proto: "udp", Dst: "198.18.0.1:21", App: AppFTP})
	if r.Conns[0].Result != Error {
		t.Errorf("ftp over udp: %+v", r.Conns[0])
	}
}

// A slow upload: the payload a line at a time. The test server answers
// after the first line and closes: the upload stops there, its answer
// counts.
func TestTrickle(t *testing.T) {
	testenv.RequireRoot(t)
	p := setup(t)
	r := run(t, p.A, obs.ConnectArgs{Proto: "tcp", Src: p.AAddr, Dst: p.BAddr + ":8080", Count: 2,
		Payload: "GET / HTTP/1.0\r\nX-A: 1\r\nX-B: 2\r\n\r\n", Trickle: 30 * time.Millisecond})
	for _, c := range r.Conns {
		if c.Result != OK || c.Response != "HTTP/1.0 200 OK" || c.Took < 30*time.Millisecond {
			t.Errorf("%+v: want ok after at least one gap", c)
		}
	}
}
