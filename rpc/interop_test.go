package rpc_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"testing"

	"go.lsp.dev/jsonrpc2"

	"github.com/bottle-dev/bottle/rpc"
)

// pipeConn joins a reader and a writer into the io.ReadWriteCloser that
// jsonrpc2.NewStream takes.
type pipeConn struct {
	io.Reader
	io.WriteCloser
}

// A client built on go.lsp.dev/jsonrpc2 itself, as a Go editor plugin
// would be, can drive the server: calls, notifications both ways, and
// error codes that survive the round trip.
func TestJSONRPC2ClientInterop(t *testing.T) {
	ctx := context.Background()
	serverIn, clientOut := io.Pipe()
	clientIn, serverOut := io.Pipe()
	srv := rpc.NewServer(&fakeBackend{}, rpc.Options{Logger: testLogger(t)})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, serverIn, serverOut) }()

	var mu sync.Mutex
	var output []byte
	exited := make(chan rpc.ExitParams, 1)
	conn := jsonrpc2.NewConn(jsonrpc2.NewStream(pipeConn{clientIn, clientOut}))
	conn.Go(ctx, func(ctx context.Context, reply jsonrpc2.Replier, req jsonrpc2.Request) error {
		switch req.Method() {
		case rpc.MethodOutput:
			var p rpc.OutputParams
			if err := decode(req, &p); err != nil {
				return reply(ctx, nil, err)
			}
			mu.Lock()
			output = append(output, p.Data...)
			mu.Unlock()
		case rpc.MethodExecExit:
			var p rpc.ExitParams
			if err := decode(req, &p); err != nil {
				return reply(ctx, nil, err)
			}
			exited <- p
		}
		return reply(ctx, nil, nil)
	})
	t.Cleanup(func() {
		conn.Close()
		clientOut.Close()
		<-done
		clientIn.Close()
	})

	var init rpc.InitializeResult
	if _, err := conn.Call(ctx, rpc.MethodInitialize, rpc.InitializeParams{}, &init); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	if err := conn.Notify(ctx, rpc.MethodInitialized, struct{}{}); err != nil {
		t.Fatal(err)
	}
	var start rpc.StartResult
	if _, err := conn.Call(ctx, rpc.MethodStart, rpc.StartParams{Agent: "claude"}, &start); err != nil {
		t.Fatalf("start: %v", err)
	}
	var ex rpc.ExecResult
	if _, err := conn.Call(ctx, rpc.MethodExec, rpc.ExecParams{Session: start.Session, Argv: []string{"print", "hi from the bottle", "5"}}, &ex); err != nil {
		t.Fatalf("exec: %v", err)
	}
	if exit := <-exited; exit.Exec != ex.Exec || exit.Code != 5 {
		t.Errorf("exit = %+v, want code 5 of %s", exit, ex.Exec)
	}
	mu.Lock()
	got := string(output)
	mu.Unlock()
	if got != "hi from the bottle" {
		t.Errorf("output = %q", got)
	}

	_, err := conn.Call(ctx, rpc.MethodClose, rpc.CloseParams{Session: "deadbeef"}, nil)
	var werr *jsonrpc2.Error
	if !errors.As(err, &werr) || werr.Code != rpc.CodeSessionNotFound {
		t.Errorf("close unknown = %v, want code %d", err, rpc.CodeSessionNotFound)
	}
	if _, err := conn.Call(ctx, rpc.MethodShutdown, nil, nil); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := conn.Notify(ctx, rpc.MethodExit, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve = %v", err)
	}
	done <- nil // for Cleanup
	if srv.ExitCode() != 0 {
		t.Errorf("exit code %d, want 0", srv.ExitCode())
	}
}

func decode(req jsonrpc2.Request, v any) error {
	return json.Unmarshal(req.Params(), v)
}
