// Package egress is the egress proxy that runs in a bottle's sidecar: the
// agent's only way out. It forwards plain HTTP and tunnels CONNECT to the
// targets an allowlist names, refuses everything else, and writes one JSON
// audit line per decision.
package egress

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Config is what the sidecar is given (as JSON, on stdin or from a file).
type Config struct {
	Listen  string   `json:"listen"`  // empty means ":3128" (applied by Run)
	Session string   `json:"session"` // bottle session id, copied into every audit record
	Allow   []string `json:"allow"`   // allowlist entries, see Policy
}

// ReadConfig decodes a Config from r. Unknown fields are an error naming the
// field: a misspelt "allow" would otherwise silently deny everything.
func ReadConfig(r io.Reader) (Config, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, fmt.Errorf("egress: read config: %w", err)
	}
	// Text after the object is more likely a broken file than intent.
	if _, err := dec.Token(); err != io.EOF {
		return Config{}, errors.New("egress: read config: unexpected data after the JSON object")
	}
	return cfg, nil
}
