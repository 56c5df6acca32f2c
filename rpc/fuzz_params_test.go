package rpc_test

import (
	"fmt"
	"testing"

	"github.com/bottle-dev/bottle/rpc"
)

// FuzzParams sends every method arbitrary params: each gets an answer,
// and the server keeps serving.
func FuzzParams(f *testing.F) {
	methods := []string{
		rpc.MethodInitialize, rpc.MethodPlan, rpc.MethodStart, rpc.MethodExec, rpc.MethodInput,
		rpc.MethodResize, rpc.MethodAck, rpc.MethodKill, rpc.MethodCp, rpc.MethodClose,
		rpc.MethodList, rpc.MethodAgents, rpc.MethodCancelRequest, "bottle/unknown",
	}
	for i := range methods {
		f.Add(uint8(i), []byte(`{}`))
		f.Add(uint8(i), []byte(`{"session":"x","exec":"y","agent":"claude","argv":["a"],"cols":-1}`))
		f.Add(uint8(i), []byte(`[1,2]`))
		f.Add(uint8(i), []byte(`null`))
	}
	f.Add(uint8(2), []byte(`{"agent":"claude","workDoneToken":{"x":1},"env":{"A":1}}`))
	f.Add(uint8(3), []byte(`{"session":"","tty":"yes","rows":1e99}`))
	f.Fuzz(func(t *testing.T, m uint8, params []byte) {
		h := newHarness(t, rpc.Options{})
		h.initialize()
		method := methods[int(m)%len(methods)]
		h.client.writeBody([]byte(fmt.Sprintf(`{"jsonrpc":"2.0","id":"fuzz","method":%q,"params":%s}`, method, params)))
		var list rpc.ListResult
		h.client.mustCall(rpc.MethodList, rpc.ListParams{}, &list)
	})
}
