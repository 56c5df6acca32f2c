// Command netprobe is the network tool of the egress security tests, one
// static binary with two roles:
//
// As an upstream (netprobe serve, the entrypoint of its FROM scratch test
// image, started on a bottle's egress network under an alias): HTTP on :80
// and HTTPS on :443 answering "netprobe: METHOD PATH" (a self-signed
// certificate for *.test, made at start), a TCP and a UDP echo on :7, and a
// byte source on :9000 (send an 8-byte big-endian count, get that many
// bytes).
//
// As an attacker (copied into the agent, run as the agent user): each probe
// tries one way out and exits 0 only when it got through, printing what
// happened.
//
//	netprobe tcp ADDR              connect
//	netprobe udp ADDR              send a datagram, wait for any answer
//	netprobe dns NAME SERVER       ask SERVER (UDP, then TCP) for NAME
//	netprobe tls PROXY TARGET SNI  CONNECT TARGET through PROXY, then TLS naming SNI
//	netprobe addrs                 list this host's interface addresses
//
// And as a benchmark client (netprobe bench ..., see bench).
package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"time"
)

const probeTimeout = 3 * time.Second

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: netprobe serve|tcp|udp|dns|tls|addrs|bench ...")
	}
	args := os.Args[2:]
	var err error
	switch os.Args[1] {
	case "serve":
		serve()
	case "tcp":
		err = probeTCP(args[0])
	case "udp":
		err = probeUDP(args[0])
	case "dns":
		err = probeDNS(args[0], args[1])
	case "tls":
		err = probeTLS(args[0], args[1], args[2])
	case "addrs":
		err = addrs()
	case "bench":
		err = bench(args)
	default:
		log.Fatalf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Println("failed:", err)
		os.Exit(1)
	}
}

func serve() {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "netprobe: %s %s\n", r.Method, r.URL.Path)
	})
	go func() { log.Fatal(http.ListenAndServe(":80", h)) }()
	go func() {
		srv := &http.Server{Addr: ":443", Handler: h, TLSConfig: &tls.Config{Certificates: []tls.Certificate{selfSigned()}},
			ErrorLog: log.New(io.Discard, "", 0)}
		log.Fatal(srv.ListenAndServeTLS("", ""))
	}()
	go accept(":7", func(c net.Conn) { io.Copy(c, c) })
	go accept(":9000", func(c net.Conn) {
		var n uint64
		if err := binary.Read(c, binary.BigEndian, &n); err != nil {
			return
		}
		buf := make([]byte, 64<<10)
		for n > 0 {
			k := min(n, uint64(len(buf)))
			if _, err := c.Write(buf[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	pc, err := net.ListenPacket("udp", ":7")
	if err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			log.Fatal(err)
		}
		pc.WriteTo(buf[:n], from)
	}
}

func accept(addr string, handle func(net.Conn)) {
	ln, err := net.Listen("tcp", addr)
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
			handle(c)
		}()
	}
}

func selfSigned() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"*.test"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func probeTCP(addr string) error {
	c, err := net.DialTimeout("tcp", addr, probeTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Println("connected to", c.RemoteAddr())
	return nil
}

func probeUDP(addr string) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write([]byte("netprobe ping")); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(probeTimeout))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	fmt.Printf("reply of %d bytes from %s\n", n, addr)
	return nil
}

// probeDNS asks one server directly, as an attacker who ignores
// resolv.conf would, over UDP and then over TCP.
func probeDNS(name, server string) error {
	var errs []error
	for _, network := range []string{"udp", "tcp"} {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		}}
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		addrs, err := r.LookupHost(ctx, name)
		cancel()
		if err == nil {
			fmt.Printf("%s over %s: %v\n", name, network, addrs)
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", network, err))
	}
	return fmt.Errorf("%v", errs)
}

func probeTLS(proxy, target, sni string) error {
	c, err := net.DialTimeout("tcp", proxy, probeTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("CONNECT: %s", resp.Status)
	}
	tc := tls.Client(&readerConn{Conn: c, r: br}, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS naming %s in a tunnel to %s: %w", sni, target, err)
	}
	fmt.Printf("TLS naming %s through a tunnel to %s: handshake done\n", sni, target)
	return nil
}

type readerConn struct {
	net.Conn
	r io.Reader
}

func (c *readerConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func addrs() error {
	ifs, err := net.Interfaces()
	if err != nil {
		return err
	}
	for _, i := range ifs {
		as, _ := i.Addrs()
		for _, a := range as {
			fmt.Printf("%s %s\n", i.Name, a)
		}
	}
	return nil
}

// bench measures from this container, either through a proxy or directly:
//
//	netprobe bench latency  [-proxy ADDR] -url http://HOST/ -n N       N GETs on one kept-alive connection
//	netprobe bench connect  [-proxy ADDR] -target HOST:PORT -n N       N new connections (CONNECT tunnels) with a 1-byte echo each
//	netprobe bench download [-proxy ADDR] -target HOST:9000 -bytes B   one download of B bytes
//
// It prints one JSON object: the median and 90th percentile per operation
// in microseconds, or the throughput in MB/s.
func bench(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	proxy := fs.String("proxy", "", "proxy host:port; empty means direct")
	rawURL := fs.String("url", "", "URL for latency")
	target := fs.String("target", "", "host:port for connect and download")
	n := fs.Int("n", 200, "operations")
	size := fs.Int64("bytes", 256<<20, "bytes to download")
	if len(args) == 0 {
		return fmt.Errorf("bench latency|connect|download ...")
	}
	mode := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	dial := func() (net.Conn, error) {
		if *proxy == "" {
			return net.DialTimeout("tcp", *target, 5*time.Second)
		}
		return tunnel(*proxy, *target)
	}
	var samples []time.Duration
	out := map[string]any{"mode": mode, "proxied": *proxy != ""}
	switch mode {
	case "latency":
		tr := &http.Transport{MaxIdleConnsPerHost: 1}
		if *proxy != "" {
			tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: *proxy})
		}
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		get := func() error {
			resp, err := client.Get(*rawURL)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return err
		}
		if err := get(); err != nil { // warm: the connection is made here
			return err
		}
		for range *n {
			t0 := time.Now()
			if err := get(); err != nil {
				return err
			}
			samples = append(samples, time.Since(t0))
		}
	case "connect":
		for range *n {
			t0 := time.Now()
			c, err := dial()
			if err != nil {
				return err
			}
			b := []byte{'x'}
			if _, err := c.Write(b); err == nil {
				_, err = io.ReadFull(c, b)
			}
			c.Close()
			if err != nil {
				return err
			}
			samples = append(samples, time.Since(t0))
		}
	case "download":
		c, err := dial()
		if err != nil {
			return err
		}
		defer c.Close()
		t0 := time.Now()
		if err := binary.Write(c, binary.BigEndian, uint64(*size)); err != nil {
			return err
		}
		got, err := io.Copy(io.Discard, io.LimitReader(c, *size))
		if err != nil {
			return err
		}
		if got != *size {
			return fmt.Errorf("got %d of %d bytes", got, *size)
		}
		el := time.Since(t0)
		out["mbps"] = float64(*size) / el.Seconds() / 1e6
		out["seconds"] = el.Seconds()
		return json.NewEncoder(os.Stdout).Encode(out)
	default:
		return fmt.Errorf("unknown bench %q", mode)
	}
	slices.Sort(samples)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	out["median_us"] = us(samples[len(samples)/2])
	out["p90_us"] = us(samples[len(samples)*9/10])
	out["n"] = len(samples)
	return json.NewEncoder(os.Stdout).Encode(out)
}

// tunnel opens a CONNECT tunnel to target through proxy.
func tunnel(proxy, target string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", proxy, 5*time.Second)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != 200 {
		c.Close()
		return nil, fmt.Errorf("CONNECT %s: %s", target, resp.Status)
	}
	if br.Buffered() > 0 {
		return &readerConn{Conn: c, r: br}, nil
	}
	return c, nil
}
