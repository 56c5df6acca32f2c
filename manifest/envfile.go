package manifest

import (
	"fmt"
	"strings"
)

// envLineError is a bad line in an env file, numbered from 1.
type envLineError struct {
	line int
	msg  string
}

// parseEnvFile reads KEY=VALUE lines as docker run --env-file does, plus
// what shell-style .env files add: an "export " prefix and matching quotes
// around the value. Blank lines and # comments are skipped; a later line
// wins over an earlier one with the same key, as in a shell.
func parseEnvFile(data string) (map[string]string, []envLineError) {
	env := map[string]string{}
	var errs []envLineError
	for i, raw := range strings.Split(data, "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "export"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			line = strings.TrimSpace(rest)
		}
		key, value, ok := strings.Cut(line, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch {
		case !ok:
			errs = append(errs, envLineError{i + 1, fmt.Sprintf("expected KEY=VALUE, got %q", line)})
			continue
		case !envName.MatchString(key):
			errs = append(errs, envLineError{i + 1, fmt.Sprintf("invalid variable name %q; use letters, digits and _, not starting with a digit", key)})
			continue
		}
		if value != "" && (value[0] == '"' || value[0] == '\'') {
			q := value[:1]
			if len(value) < 2 || !strings.HasSuffix(value, q) {
				errs = append(errs, envLineError{i + 1, fmt.Sprintf("value of %s opens a %s quote it does not close; end the line with %s", key, q, q)})
				continue
			}
			value = value[1 : len(value)-1]
		}
		env[key] = value
	}
	return env, errs
}
