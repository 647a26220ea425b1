package filters

import (
	"fmt"
	"unicode/utf8"

	"github.com/llitfkitfk/containerd/errdefs"
)

// ParseError describes where and why a filter string was rejected. It wraps
// errdefs.ErrInvalidArgument.
type ParseError struct {
	Input string // the whole filter string
	Pos   int    // byte offset of the offending input
	Msg   string // what was wrong, or what was expected
}

// Error marks the offending rune the way containerd does, so that messages
// read the same to its users: [name==foo, >|,|< bar].
func (e *ParseError) Error() string {
	loc := "[" + e.Input + "]"
	if e.Pos >= 0 && e.Pos < len(e.Input) {
		_, w := utf8.DecodeRuneInString(e.Input[e.Pos:])
		end := e.Pos + w
		loc = fmt.Sprintf("[%s >|%s|< %s]", e.Input[:e.Pos], e.Input[e.Pos:end], e.Input[end:])
	}
	return fmt.Sprintf("filters: parse error: %s: %s: %v", loc, e.Msg, errdefs.ErrInvalidArgument)
}

// Unwrap makes errdefs.IsInvalidArgument hold for every parse error.
func (e *ParseError) Unwrap() error { return errdefs.ErrInvalidArgument }
