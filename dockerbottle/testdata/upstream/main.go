// Command upstream is the test server that egress tests reach through the
// sidecar: plain HTTP on :80 and HTTPS (a self-signed certificate made at
// start) on :443, both answering "upstream: METHOD PATH".
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log"
	"math/big"
	"net/http"
	"time"
)

func main() {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "upstream: %s %s\n", r.Method, r.URL.Path)
	})
	go func() { log.Fatal(http.ListenAndServe(":80", h)) }()
	srv := &http.Server{Addr: ":443", Handler: h, TLSConfig: &tls.Config{Certificates: []tls.Certificate{selfSigned()}}}
	log.Fatal(srv.ListenAndServeTLS("", ""))
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
