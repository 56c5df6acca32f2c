// Command firstbyte times a connection through the egress proxy on the
// host's wall clock, which every container on the machine shares (gVisor's
// sandbox clock follows the host's too), so that one program's stamps can
// be set against another's and the test's.
//
//	firstbyte serve          upstream: on :7000, per connection, read one byte
//	                         and answer when it arrived (Unix ns, a line)
//	firstbyte connect HOST:PORT
//	                         agent: CONNECT HOST:PORT through $HTTPS_PROXY,
//	                         send one byte once the tunnel is up, and print
//	                         "sent=NS wrote=NS upstream=NS back=NS": when the
//	                         connection to the proxy was opened, when the
//	                         byte was written, when it arrived upstream and
//	                         when the upstream's answer was back; the
//	                         upstream's stamp lies between the last two
//	                         when the two clocks agree
package main

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "serve" {
		serve()
		return
	}
	if len(os.Args) != 3 || os.Args[1] != "connect" {
		log.Fatal("usage: firstbyte serve | firstbyte connect HOST:PORT")
	}
	if err := connect(os.Args[2]); err != nil {
		fmt.Println("failed:", err)
		os.Exit(1)
	}
}

func serve() {
	ln, err := net.Listen("tcp", ":7000")
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			defer c.Close()
			if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
				return
			}
			fmt.Fprintf(c, "%d\n", time.Now().UnixNano())
		}()
	}
}

func connect(target string) error {
	proxy, err := url.Parse(os.Getenv("HTTPS_PROXY"))
	if err != nil || proxy.Host == "" {
		return fmt.Errorf("HTTPS_PROXY %q: not a proxy URL", os.Getenv("HTTPS_PROXY"))
	}
	sent := time.Now().UnixNano()
	c, err := net.DialTimeout("tcp", proxy.Host, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("CONNECT %s: %s", target, resp.Status)
	}
	wrote := time.Now().UnixNano()
	if _, err := c.Write([]byte{'x'}); err != nil {
		return err
	}
	line, err := br.ReadString('\n')
	back := time.Now().UnixNano()
	if err != nil {
		return fmt.Errorf("reading the upstream's stamp: %w", err)
	}
	upstream, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	if err != nil {
		return fmt.Errorf("the upstream's stamp %q: %w", line, err)
	}
	fmt.Printf("sent=%d wrote=%d upstream=%d back=%d\n", sent, wrote, upstream, back)
	return nil
}
