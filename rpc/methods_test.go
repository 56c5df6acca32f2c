package rpc

import (
	"slices"
	"testing"
)

// The server's dispatch tables and the registry the protocol's files are
// generated from name the same methods: a handler added without a
// registry entry (so undocumented) fails here.
func TestDispatchMatchesTheRegistry(t *testing.T) {
	s := NewServer(nil, Options{}).newConn(true)
	served := []string{MethodInitialize, MethodInitialized, MethodShutdown, MethodExit, MethodCancelRequest}
	for m := range s.methods {
		served = append(served, m)
	}
	for m := range s.controls {
		served = append(served, m)
	}
	var registered []string
	for _, m := range Methods {
		if m.Dir != ServerNotification && m.Dir != ServerRequest {
			registered = append(registered, m.Name)
		}
	}
	slices.Sort(served)
	slices.Sort(registered)
	if !slices.Equal(served, registered) {
		t.Errorf("served %v, registered %v", served, registered)
	}
}
