package rpc

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/bottle-dev/bottle/backend"
)

func TestABackendErrorAboutAFieldNamesIt(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantField string
	}{
		{"a field error", fmt.Errorf("copy x into session s: %w", backend.InvalidField("containerPath", "the folder /a cannot be made")), "containerPath"},
		{"an invalid request about no one field", fmt.Errorf("%w: no manifest", backend.ErrInvalid), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire := errorFor(tt.err)
			var data ErrorData
			if err := json.Unmarshal(*wire.Data, &data); err != nil {
				t.Fatal(err)
			}
			if wire.Code != CodeInvalidParams || data.Kind != KindInvalidParams || data.Field != tt.wantField {
				t.Errorf("code %d kind %q field %q, want %d %q %q", wire.Code, data.Kind, data.Field, CodeInvalidParams, KindInvalidParams, tt.wantField)
			}
		})
	}
}
