package rpc_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/rpc"
)

// LSP client libraries (Neovim's among them) send a method without params
// as []: the server takes it as {}, and still refuses any other array.
func TestEmptyArrayParamsAreEmptyParams(t *testing.T) {
	h := newHarness(t, rpc.Options{})
	c := h.client
	c.writeMessage(map[string]any{"jsonrpc": "2.0", "id": "init", "method": rpc.MethodInitialize, "params": []any{}})
	if resp := c.response(`"init"`); resp.Error != nil {
		t.Fatalf("initialize with [] params: error %+v", resp.Error)
	}
	c.writeMessage(map[string]any{"jsonrpc": "2.0", "id": "list", "method": rpc.MethodList, "params": []any{}})
	if resp := c.response(`"list"`); resp.Error != nil || !strings.Contains(string(resp.Result), `"sessions":[]`) {
		t.Errorf("bottle/list with [] params = %s, error %+v; want the empty list", resp.Result, resp.Error)
	}
	c.writeMessage(map[string]any{"jsonrpc": "2.0", "id": "one", "method": rpc.MethodList, "params": []any{1}})
	resp := c.response(`"one"`)
	if resp.Error == nil {
		t.Fatalf("bottle/list with [1] params = %s, want -32602", resp.Result)
	}
	checkError(t, "[1] params", resp.Error, -32602, rpc.KindInvalidParams)
}

// The workspace and home are reported, not assumed: a client copies to
// the path the bottle has.
func TestStartAndListReportTheBottlesPaths(t *testing.T) {
	h := newHarness(t, rpc.Options{})
	h.initialize()
	var res rpc.StartResult
	h.client.mustCall(rpc.MethodStart, rpc.StartParams{Agent: "claude"}, &res)
	if res.Home != "/home/fake" || res.Workspace != "/home/fake/work" {
		t.Errorf("start result home, workspace = %q, %q; want the backend's", res.Home, res.Workspace)
	}
	var list rpc.ListResult
	h.client.mustCall(rpc.MethodList, nil, &list)
	if len(list.Sessions) != 1 || list.Sessions[0].Home != "/home/fake" || list.Sessions[0].Workspace != "/home/fake/work" {
		t.Errorf("list = %+v, want the session with the backend's home and workspace", list.Sessions)
	}
}

// copyGit is a wire param: it is checked at the protocol edge, before the
// backend is asked for anything.
func TestStartRefusesCopyGitWithoutAGitFolder(t *testing.T) {
	noGit := t.TempDir()
	gitFile := t.TempDir()
	if err := os.WriteFile(filepath.Join(gitFile, ".git"), []byte("gitdir: elsewhere\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, rpc.Options{})
	h.initialize()
	tests := []struct {
		name   string
		params rpc.StartParams
	}{
		{"without cwd", rpc.StartParams{Agent: "claude", CopyGit: true}},
		{"cwd without .git", rpc.StartParams{Agent: "claude", Cwd: noGit, CopyGit: true}},
		{".git is a file", rpc.StartParams{Agent: "claude", Cwd: gitFile, CopyGit: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := h.client.callErr(rpc.MethodStart, tt.params)
			checkError(t, tt.name, e, -32602, rpc.KindInvalidParams)
			if e.Data.Field != "copyGit" {
				t.Errorf("field = %q, want copyGit", e.Data.Field)
			}
		})
	}
	if got := h.be.Events(); len(got) != 0 {
		t.Errorf("the backend was asked: %v", got)
	}
}

// Every request the registry lists is served, so a client written from
// protocol.md never gets method-not-found for a documented method.
func TestEveryRegisteredRequestIsServed(t *testing.T) {
	h := newHarness(t, rpc.Options{})
	res := h.initialize()
	var want []string
	for _, m := range rpc.Methods {
		if m.Dir == rpc.ServerNotification || m.Dir == rpc.ServerRequest {
			continue
		}
		want = append(want, m.Name)
		if m.Name == rpc.MethodShutdown || m.Dir != rpc.ClientRequest && !m.AlsoOtherDir {
			continue
		}
		if resp := h.client.call(m.Name, map[string]any{}); resp.Error != nil && resp.Error.Code == -32601 {
			t.Errorf("%s: method not found", m.Name)
		}
	}
	slices.Sort(want)
	if !slices.Equal(res.Capabilities.Methods, want) {
		t.Errorf("capabilities.methods = %v, want %v", res.Capabilities.Methods, want)
	}
}
