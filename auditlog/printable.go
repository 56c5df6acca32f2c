package auditlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Printable returns s fit to be read by a person on a terminal. Text that
// an agent chose (a host, an SNI value in a reason) may hold a newline and
// a fake row after it, terminal escapes, or bidi controls that reorder or
// hide what follows: such text is shown quoted, with every control, format
// character (bidi included), invalid byte and backslash escaped, as
// strconv.QuoteToGraphic writes it. Plain text is shown as it is, and so is
// the empty string.
func Printable(s string) string {
	if !needsQuoting(s) {
		return s
	}
	return strconv.QuoteToGraphic(s)
}

func needsQuoting(s string) bool {
	if strings.HasPrefix(s, `"`) {
		return true // would read as a quoted string
	}
	for _, r := range s {
		if r == '\\' || r == utf8.RuneError || !unicode.IsGraphic(r) {
			return true
		}
	}
	return false
}

// printableJSON rewrites one JSON value for a terminal without changing
// what it means: insignificant whitespace goes, and every rune that is not
// printable ASCII becomes a \u escape (only strings can hold such runes
// once the value is compacted).
func printableJSON(line []byte) ([]byte, error) {
	var compact bytes.Buffer
	if err := json.Compact(&compact, line); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for _, r := range compact.String() {
		switch {
		case r >= 0x20 && r < 0x7f:
			out.WriteRune(r)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&out, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&out, `\u%04x`, r)
		}
	}
	return out.Bytes(), nil
}
