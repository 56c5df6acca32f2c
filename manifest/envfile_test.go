package manifest

import (
	"fmt"
	"reflect"
	"testing"
)

func TestParseEnvFileReadsDotenvLines(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr string // "LINE: message"
	}{
		{"plain", "A=1\nB=two words\n", map[string]string{"A": "1", "B": "two words"}, ""},
		{"blank lines and comments", "\n# c\n  # indented\nA=1\n\n", map[string]string{"A": "1"}, ""},
		{"export prefix", "export A=1\nexport\tB=2\nexported=3\n", map[string]string{"A": "1", "B": "2", "exported": "3"}, ""},
		{"quotes", "A=\"x y\"\nB='z'\nC=\"\"\nD=a\"b\"\n", map[string]string{"A": "x y", "B": "z", "C": "", "D": `a"b"`}, ""},
		{"empty value", "A=\n", map[string]string{"A": ""}, ""},
		{"equals in value", "A=b=c\n", map[string]string{"A": "b=c"}, ""},
		{"spaces around", "  A = 1  \r\n", map[string]string{"A": "1"}, ""},
		{"later wins", "A=1\nA=2\n", map[string]string{"A": "2"}, ""},
		{"no equals", "A=1\nJUSTNAME\n", nil, `2: expected KEY=VALUE, got "JUSTNAME"`},
		{"bad name", "1A=x\n", nil, `1: invalid variable name "1A"; use letters, digits and _, not starting with a digit`},
		{"unclosed quote", "\nA=\"open\n", nil, `2: value of A opens a " quote it does not close; end the line with "`},
		{"lone quote", "A='\n", nil, `1: value of A opens a ' quote it does not close; end the line with '`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := parseEnvFile(tt.in)
			if tt.wantErr != "" {
				if len(errs) != 1 || fmt.Sprintf("%d: %s", errs[0].line, errs[0].msg) != tt.wantErr {
					t.Errorf("errors = %+v, want one: %s", errs, tt.wantErr)
				}
				return
			}
			if len(errs) > 0 || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, %+v; want %v", got, errs, tt.want)
			}
		})
	}
}
