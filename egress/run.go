package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"time"
)

// DefaultPort is where the proxy listens unless its config says otherwise.
const DefaultPort = 3128

// ListeningLine starts the line Run writes to its log once it accepts
// connections; the server waits for it before it hands a bottle out.
const ListeningLine = "egress proxy listening on "

var defaultListen = ":" + strconv.Itoa(DefaultPort)

// limits are the proxy's timeouts, gathered so that tests can shrink them.
type limits struct {
	dial       time.Duration // to reach an upstream
	readHeader time.Duration // for a client to send a request head
	idle       time.Duration // between requests on a kept-alive client connection
	grace      time.Duration // at shutdown, for open requests and tunnels to finish
}

var defaultLimits = limits{
	dial:       10 * time.Second,
	readHeader: 30 * time.Second,
	idle:       2 * time.Minute,
	// Short: the sidecar is stopped with the bottle, and docker stop kills
	// it outright after 10 s.
	grace: 3 * time.Second,
}

// Run listens on cfg.Listen and serves until ctx is done, then shuts down
// gracefully: open requests and tunnels get a short grace period, then the
// tunnels still open are closed. It writes audit records as JSON lines to
// auditOut, and to logOut the line "egress proxy listening on ADDR" once
// listening, then the HTTP server's own error messages.
func Run(ctx context.Context, cfg Config, auditOut, logOut io.Writer) error {
	return run(ctx, cfg, auditOut, logOut, defaultLimits)
}

func run(ctx context.Context, cfg Config, auditOut, logOut io.Writer, lim limits) error {
	opts, err := cfg.options()
	if err != nil {
		return err
	}
	addr := cfg.Listen
	if addr == "" {
		addr = defaultListen
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("egress: listen: %w", err)
	}
	errorLog := log.New(logOut, "egress: ", log.LstdFlags)
	opts.Audit = NewJSONAuditor(auditOut)
	p := newProxy(opts, lim.dial)
	p.errorLog = errorLog
	defer p.transport.CloseIdleConnections()
	// Hijacked CONNECT connections are outside the server's timeouts, so
	// none of these can cut a tunnel.
	srv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: lim.readHeader,
		IdleTimeout:       lim.idle,
		ErrorLog:          errorLog,
	}
	fmt.Fprintf(logOut, "%s%s\n", ListeningLine, ln.Addr())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		// The listener failed and nothing will be served any more: there is
		// nothing to be graceful for.
		srv.Close()
		now, cancel := context.WithCancel(context.Background())
		cancel()
		p.shutdown(now)
		return fmt.Errorf("egress: serve: %w", err)
	case <-ctx.Done():
	}

	grace, cancel := context.WithTimeout(context.Background(), lim.grace)
	defer cancel()
	if err := srv.Shutdown(grace); err != nil {
		// Requests still running after the grace period are cut.
		srv.Close()
	}
	p.shutdown(grace)
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("egress: serve: %w", err)
	}
	return nil
}
