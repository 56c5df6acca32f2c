package egress

import (
	"reflect"
	"strings"
	"testing"
)

func TestReadConfigIsStrict(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Config
		wantErr string
	}{
		{
			name: "all fields",
			in:   `{"listen": ":8080", "session": "s1", "allow": ["example.com", "*.example.org:*"]}`,
			want: Config{Listen: ":8080", Session: "s1", Allow: []string{"example.com", "*.example.org:*"}},
		},
		{
			name: "security fields",
			in: `{"allow": ["a.test"], "block": ["b.test"], "trusted": ["git.test", "10.0.0.0/8"],
			      "dlp": {"no_builtin": true, "disable": ["openai-key"], "patterns": [{"name": "p", "regex": "x+y"}],
			              "secrets": [{"name": "TOKEN", "value": "0123456789"}]}}`,
			want: Config{Allow: []string{"a.test"}, Block: []string{"b.test"}, Trusted: []string{"git.test", "10.0.0.0/8"},
				DLP: DLPConfig{NoBuiltin: true, Disable: []string{"openai-key"}, Patterns: []Pattern{{Name: "p", Regex: "x+y"}},
					Secrets: []Secret{{Name: "TOKEN", Value: "0123456789"}}}},
		},
		{
			name: "ask fields",
			in:   `{"allow": [], "ask": true, "askTimeout": "10s"}`,
			want: Config{Allow: []string{}, Ask: true, AskTimeout: "10s"},
		},
		{name: "unknown DLP field is named", in: `{"dlp": {"pattern": []}}`, wantErr: `"pattern"`},
		{name: "empty object leaves defaults to Run", in: `{}`, want: Config{}},
		{name: "unknown field is named", in: `{"allowlist": ["example.com"]}`, wantErr: `"allowlist"`},
		{name: "trailing data", in: `{} {}`, wantErr: "after the JSON object"},
		{name: "not JSON", in: `listen: :3128`, wantErr: "invalid character"},
		{name: "empty input", in: ``, wantErr: "EOF"},
		{name: "wrong type", in: `{"allow": "example.com"}`, wantErr: "allow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadConfig(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ReadConfig error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadConfig: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ReadConfig = %+v, want %+v", got, tt.want)
			}
		})
	}
}
