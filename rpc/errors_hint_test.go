package rpc

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/backend"
)

type hinted struct{ error }

func (h hinted) Unwrap() error { return h.error }
func (hinted) Hint() string    { return "check that the folder is readable" }

func TestAnErrorThatKnowsItsCauseGivesItsOwnHint(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantHint string
	}{
		{"a missing image keeps the kind's advice", fmt.Errorf("%w: image x is not on the engine", backend.ErrImage), "run scripts/setup.sh"},
		{"a failed build says what to do instead", fmt.Errorf("starting: %w", hinted{fmt.Errorf("%w: building bottle-workspace:s: COPY failed", backend.ErrImage)}), "check that the folder is readable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire := errorFor(tt.err)
			if wire.Code != CodeImageUnavailable {
				t.Errorf("code %d, want %d", wire.Code, CodeImageUnavailable)
			}
			var data ErrorData
			if err := json.Unmarshal(*wire.Data, &data); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(data.Hint, tt.wantHint) {
				t.Errorf("hint %q, want one with %q", data.Hint, tt.wantHint)
			}
		})
	}
}
