// Package filters implements containerd's filter language, used by list and
// subscribe calls to select objects by their fields.
//
// A filter is a comma-separated list of selectors, all of which must match:
//
//	name==foo,labels."example.com/tier"~=^prod
//
// A selector is a dot-separated fieldpath, optionally followed by an operator
// and a value. A bare fieldpath matches when the field is present; "=="
// matches a present field with an equal value; "!=" matches when the value
// differs (an absent field reads as ""); "~=" matches the value against a Go
// regular expression.
//
// Fieldpath components are runs of [A-Za-z0-9_-] or double-quoted Go strings.
// Values are double-quoted Go strings, or bare runs of printable characters up
// to a comma or space. Regular expressions may also be quoted with '/' or '|',
// escaping the delimiter with a backslash.
//
// As an extension, '|' between selectors ORs conjunctions, and a bare value
// may start with '/', so that topics can be written unquoted. Both were parse
// errors in containerd, so every filter it accepts means the same here. Note
// that within a bare value '|' is an ordinary character, as in containerd:
// "name==a|b" compares with "a|b"; write "name==a | name==b" to OR.
package filters

import "regexp"

// Filter reports whether an object, seen through its Adaptor, is selected.
type Filter interface {
	Match(adaptor Adaptor) bool
}

// FilterFunc adapts an ordinary function to a Filter.
type FilterFunc func(Adaptor) bool

// Match calls fn(adaptor).
func (fn FilterFunc) Match(adaptor Adaptor) bool { return fn(adaptor) }

// Always matches every object; it is what an empty filter means.
var Always Filter = FilterFunc(func(Adaptor) bool { return true })

// Any matches when one of its filters matches.
type Any []Filter

// Match reports whether any filter in m matches.
func (m Any) Match(adaptor Adaptor) bool {
	for _, f := range m {
		if f.Match(adaptor) {
			return true
		}
	}
	return false
}

// All matches when every one of its filters matches.
type All []Filter

// Match reports whether every filter in m matches.
func (m All) Match(adaptor Adaptor) bool {
	for _, f := range m {
		if !f.Match(adaptor) {
			return false
		}
	}
	return true
}

type operator uint8

const (
	opPresent operator = iota
	opEqual
	opNotEqual
	opMatches
)

func (op operator) String() string {
	switch op {
	case opPresent:
		return "?"
	case opEqual:
		return "=="
	case opNotEqual:
		return "!="
	case opMatches:
		return "~="
	}
	return "unknown"
}

// selector is one compiled fieldpath test. The regular expression is
// compiled at parse time so that Match never fails and never allocates.
type selector struct {
	fieldpath []string
	op        operator
	value     string
	re        *regexp.Regexp
}

// Match follows containerd: "!=" and "~=" look at the value even when the
// field is absent, in which case it reads as the empty string.
func (s *selector) Match(adaptor Adaptor) bool {
	value, present := adaptor.Field(s.fieldpath)
	switch s.op {
	case opPresent:
		return present
	case opEqual:
		return present && value == s.value
	case opNotEqual:
		return value != s.value
	case opMatches:
		return s.re.MatchString(value)
	}
	return false
}
