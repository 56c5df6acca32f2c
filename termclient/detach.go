package termclient

import (
	"fmt"
	"strings"
)

// DefaultDetachKeys is docker's detach sequence: Ctrl-P then Ctrl-Q. A
// Ctrl-P followed by any other key reaches the process, with that key.
const DefaultDetachKeys = "ctrl-p,ctrl-q"

// DetachKeys is the key sequence that detaches the terminal from a
// persistent bottle, leaving it running.
type DetachKeys struct {
	spec string
	seq  []byte
}

// ParseDetachKeys reads docker's --detach-keys syntax: keys separated by
// commas, each a single character or ctrl-X with X one of a-z @ [ \ ] ^ _.
func ParseDetachKeys(spec string) (DetachKeys, error) {
	if strings.TrimSpace(spec) == "" {
		return DetachKeys{}, fmt.Errorf("no keys given; give keys like %s", DefaultDetachKeys)
	}
	var seq []byte
	for key := range strings.SplitSeq(spec, ",") {
		b, err := parseKey(strings.TrimSpace(key))
		if err != nil {
			return DetachKeys{}, fmt.Errorf("%w; give keys like %s", err, DefaultDetachKeys)
		}
		seq = append(seq, b)
	}
	return DetachKeys{spec: spec, seq: seq}, nil
}

func parseKey(key string) (byte, error) {
	if len(key) == 1 {
		return key[0], nil
	}
	name, ok := strings.CutPrefix(strings.ToLower(key), "ctrl-")
	if !ok || len(name) != 1 {
		return 0, fmt.Errorf("%q is neither one character nor ctrl-X", key)
	}
	switch c := name[0]; {
	case c >= 'a' && c <= 'z':
		return c - 'a' + 1, nil
	case strings.IndexByte("@[\\]^_", c) >= 0:
		return c - '@', nil // ctrl-@ is NUL, ctrl-_ is 0x1f
	}
	return 0, fmt.Errorf("%q: after ctrl- comes one of a-z @ [ \\ ] ^ _", key)
}

// String names the keys for a person: "Ctrl-P Ctrl-Q".
func (k DetachKeys) String() string {
	if k.seq == nil {
		return defaultKeys().String()
	}
	names := make([]string, len(k.seq))
	for i, b := range k.seq {
		if b < 0x20 {
			names[i] = "Ctrl-" + string(rune(b+'@'))
		} else {
			names[i] = fmt.Sprintf("%q", rune(b))
		}
	}
	return strings.Join(names, " ")
}

func (k DetachKeys) orDefault() DetachKeys {
	if k.seq == nil {
		return defaultKeys()
	}
	return k
}

func defaultKeys() DetachKeys {
	k, err := ParseDetachKeys(DefaultDetachKeys)
	if err != nil {
		panic(err) // the constant parses
	}
	return k
}

// detector finds the detach keys in the input stream. The start of the
// sequence is held back until the key after it shows whether the user
// detaches; a sequence split across reads is found all the same.
type detector struct {
	seq  []byte
	held []byte // always a prefix of seq
}

// feed returns what of p goes to the process, and whether the sequence
// was completed. The bytes before the sequence go through; those after it
// in the same read are dropped with the connection.
func (d *detector) feed(p []byte) (pass []byte, detach bool) {
	for _, b := range p {
		d.held = append(d.held, b)
		// Shift out what can no longer start the sequence: a mismatch
		// passes the first held byte and looks again at the rest.
		for len(d.held) > 0 && !hasPrefix(d.seq, d.held) {
			pass = append(pass, d.held[0])
			d.held = d.held[1:]
		}
		if len(d.held) == len(d.seq) {
			d.held = nil
			return pass, true
		}
	}
	return pass, false
}

func hasPrefix(s, prefix []byte) bool {
	return len(prefix) <= len(s) && string(s[:len(prefix)]) == string(prefix)
}
