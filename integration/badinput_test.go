package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/rpc"

	"github.com/bottle-dev/bottle/internal/lockedbuf"
)

// rawClient writes frames as given and reads the server's frames: bad
// input cannot be sent through a well-behaved JSON-RPC library.
type rawClient struct {
	t   testing.TB
	in  io.WriteCloser
	out *bufio.Reader
}

func startRaw(t testing.TB, args ...string) *rawClient {
	t.Helper()
	if len(args) == 0 {
		args = []string{"serve"}
	}
	cmd := serverCmd(args)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	stderr := &lockedbuf.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			t.Errorf("bottle-rpc %s did not exit after its input closed", strings.Join(args, " "))
		}
		if t.Failed() {
			t.Logf("stderr:\n%s", stderr.String())
		}
	})
	return &rawClient{t: t, in: in, out: bufio.NewReader(out)}
}

func (c *rawClient) send(body string) {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.in, "Content-Length: %d\r\n\r\n%s", len(body), body); err != nil {
		c.t.Fatal(err)
	}
}

type response struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int64           `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
}

// next returns the next response, skipping notifications.
func (c *rawClient) next() response {
	c.t.Helper()
	for {
		var r response
		if err := json.Unmarshal(c.frame(), &r); err != nil {
			c.t.Fatalf("server sent bad JSON: %v", err)
		}
		if r.Method == "" {
			return r
		}
	}
}

// frame reads the body of the next message.
func (c *rawClient) frame() []byte {
	c.t.Helper()
	length := -1
	for {
		line, err := c.out.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading a header: %v", err)
		}
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
			length, _ = strconv.Atoi(v)
		}
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(c.out, body); err != nil {
		c.t.Fatal(err)
	}
	return body
}

func TestBadInputIsAnsweredAndServingGoesOn(t *testing.T) {
	c := startRaw(t)
	c.send(`{"jsonrpc":"2.0","id":1,"method":"bottle/list","params":{}}`)
	if r := c.next(); r.Error == nil || r.Error.Code != int64(rpc.CodeServerNotInitialized) {
		t.Fatalf("request before initialize: %+v, want -32002", r)
	}
	c.send(`{"jsonrpc":"2.0","id":2,"method":"initialize","params":{}}`)
	if r := c.next(); r.Error != nil {
		t.Fatalf("initialize: %+v", r.Error)
	}
	c.send(`{"jsonrpc":"2.0","method":"initialized","params":{}}`)

	huge := `{"jsonrpc":"2.0","id":9,"method":"bottle/list","params":{"pad":"` + strings.Repeat("x", 100<<20) + `"}}`
	cases := []struct {
		name string
		body string
		code int64
		kind string
	}{
		{"malformed JSON", `{"jsonrpc":"2.0","id":3,"method":`, -32700, "parseError"},
		{"unknown method", `{"jsonrpc":"2.0","id":4,"method":"bottle/fly","params":{}}`, -32601, "methodNotFound"},
		{"wrong params type", `{"jsonrpc":"2.0","id":5,"method":"bottle/close","params":{"session":42}}`, -32602, "invalidParams"},
		{"missing field", `{"jsonrpc":"2.0","id":6,"method":"bottle/start","params":{}}`, -32602, "invalidParams"},
		{"unknown session", `{"jsonrpc":"2.0","id":7,"method":"bottle/close","params":{"session":"nope"}}`, -32101, "sessionNotFound"},
		{"unknown exec", `{"jsonrpc":"2.0","id":8,"method":"bottle/kill","params":{"exec":"nope"}}`, -32103, "execNotFound"},
		{"a message of 100 MB", huge, -32600, "messageTooLarge"},
		{"bad manifest", `{"jsonrpc":"2.0","id":10,"method":"bottle/plan","params":{"agent":"a","manifest":"/nonexistent/bottle.yaml"}}`, -32102, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.send(tc.body)
			r := c.next()
			if r.Error == nil || r.Error.Code != tc.code {
				t.Fatalf("got %+v, want code %d", r.Error, tc.code)
			}
			var data rpc.ErrorData
			json.Unmarshal(r.Error.Data, &data)
			if tc.kind != "" && data.Kind != tc.kind {
				t.Errorf("data.kind = %q, want %q", data.Kind, tc.kind)
			}
			if data.Hint == "" {
				t.Errorf("error %q has no hint saying what to do", r.Error.Message)
			}
			// The server keeps serving.
			c.send(`{"jsonrpc":"2.0","id":100,"method":"bottle/list","params":{}}`)
			if r := c.next(); r.Error != nil || string(r.ID) != "100" {
				t.Fatalf("after %s the server answered %+v", tc.name, r)
			}
		})
	}
}
