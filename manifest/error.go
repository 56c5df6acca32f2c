package manifest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in a manifest.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

// Error formats as "FILE:LINE: FIELD: MSG", the form editors and terminals
// turn into a link to the spot to fix. Line and field are left out when
// unknown (a YAML error without a line, a problem with the whole file).
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// problems collects every error in a manifest so that one run shows the
// user all there is to fix, not one problem per attempt.
type problems struct {
	list []problem
}

// problem is an Error and the manifest line it sorts by: an error inside an
// env file sorts by the manifest line that names that file.
type problem struct {
	at  int
	err *Error
}

func (ps *problems) add(at int, e *Error) {
	ps.list = append(ps.list, problem{at, e})
}

// err returns the problems in file order, joined, or nil.
func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	slices.SortStableFunc(ps.list, func(a, b problem) int { return cmp.Compare(a.at, b.at) })
	errs := make([]error, len(ps.list))
	for i, p := range ps.list {
		errs[i] = p.err
	}
	return errors.Join(errs...)
}
