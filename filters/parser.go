package filters

import (
	"fmt"
	"regexp"
	"unicode"
	"unicode/utf8"
)

// Parse compiles the filter string s. The empty string matches everything.
//
// The grammar, with whitespace allowed between tokens:
//
//	filter    := conj ('|' conj)*
//	conj      := selector (',' selector)*
//	selector  := fieldpath [operator value]
//	fieldpath := field ('.' field)*
//	field     := [A-Za-z0-9_-]+ | "go string"
//	operator  := '==' | '!=' | '~='
//	value     := "go string" | bare | /regexp/ | |regexp|
//
// Errors are *ParseError and wrap errdefs.ErrInvalidArgument.
func Parse(s string) (Filter, error) {
	if s == "" {
		return Always, nil
	}
	p := parser{input: s}
	if err := p.checkRunes(); err != nil {
		return nil, err
	}
	return p.filter()
}

// ParseAll compiles each string and ORs the results, the way list calls
// combine their repeated filters field. With no strings, or only empty ones,
// the filter matches everything.
func ParseAll(ss ...string) (Filter, error) {
	var alts Any
	always := len(ss) == 0
	for _, s := range ss {
		f, err := Parse(s)
		if err != nil {
			return nil, err
		}
		if s == "" {
			always = true
			continue
		}
		alts = append(alts, f)
	}
	switch {
	case always:
		// An empty string selects everything, so the others cannot narrow it.
		return Always, nil
	case len(alts) == 1:
		return alts[0], nil
	}
	return alts, nil
}

const eof = -1

// parser is a recursive-descent parser over the input's bytes. Structural
// characters are all ASCII, so most steps need not decode runes.
type parser struct {
	input string
	pos   int
}

// checkRunes rejects what no token may hold up front, so that the scanning
// below can decode runes without checking for errors.
func (p *parser) checkRunes() error {
	for i := 0; i < len(p.input); {
		r, w := utf8.DecodeRuneInString(p.input[i:])
		switch {
		case r == utf8.RuneError && w == 1:
			return p.errorf(i, "invalid UTF-8")
		case r == 0:
			return p.errorf(i, "unexpected null")
		}
		i += w
	}
	return nil
}

func (p *parser) filter() (Filter, error) {
	var alts Any
	for {
		conj, err := p.conjunction()
		if err != nil {
			return nil, err
		}
		alts = append(alts, conj)

		switch r := p.peek(); r {
		case eof:
			if len(alts) == 1 {
				return alts[0], nil
			}
			return alts, nil
		case '|':
			p.pos++
		default:
			return nil, p.errorf(p.pos, "unexpected input: %q", r)
		}
	}
}

// conjunction parses selectors up to a '|' or the end, leaving the parser on
// whatever stopped it, past any whitespace.
func (p *parser) conjunction() (Filter, error) {
	var all All
	for {
		s, err := p.selector()
		if err != nil {
			return nil, err
		}
		all = append(all, s)

		p.skipSpace()
		if p.peek() != ',' {
			break
		}
		p.pos++
	}
	if len(all) == 1 {
		return all[0], nil
	}
	return all, nil
}

func (p *parser) selector() (Filter, error) {
	fieldpath, err := p.fieldpath()
	if err != nil {
		return nil, err
	}

	p.skipSpace()
	switch p.peek() {
	case eof, ',', '|':
		return &selector{fieldpath: fieldpath, op: opPresent}, nil
	}

	op, err := p.operator()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	start := p.pos
	value, err := p.value(op)
	if err != nil {
		return nil, err
	}

	s := &selector{fieldpath: fieldpath, op: op, value: value}
	if op == opMatches {
		s.re, err = regexp.Compile(value)
		if err != nil {
			return nil, p.errorf(start, "invalid regular expression: %v", err)
		}
	}
	return s, nil
}

func (p *parser) fieldpath() ([]string, error) {
	var fieldpath []string
	for {
		f, err := p.field()
		if err != nil {
			return nil, err
		}
		fieldpath = append(fieldpath, f)

		if p.peek() != '.' {
			return fieldpath, nil
		}
		p.pos++
	}
}

func (p *parser) field() (string, error) {
	p.skipSpace()
	start := p.pos
	switch r := p.peek(); {
	case isFieldRune(r):
		for isFieldRune(p.peek()) {
			p.pos++
		}
		return p.input[start:p.pos], nil
	case r == '"':
		return p.quoted()
	case r == '/' || r == '|':
		return "", p.altQuoted()
	}
	return "", p.errorf(start, "expected field or quoted")
}

func (p *parser) operator() (operator, error) {
	p.skipSpace()
	start := p.pos
	for isOperatorRune(p.peek()) {
		p.pos++
	}
	switch op := p.input[start:p.pos]; op {
	case "==":
		return opEqual, nil
	case "!=":
		return opNotEqual, nil
	case "~=":
		return opMatches, nil
	case "":
		return 0, p.errorf(start, `expected an operator ("=="|"!="|"~=")`)
	default:
		return 0, p.errorf(start, "unsupported operator %q", op)
	}
}

func (p *parser) value(op operator) (string, error) {
	start := p.pos
	switch r := p.peek(); {
	case r == '"':
		return p.quoted()
	case (r == '/' || r == '|') && op == opMatches:
		return p.quoted()
	case r == '|':
		return "", p.altQuoted()
	case r == '/':
		// containerd rejects a '/'-quoted equality value, so reading it as
		// bare text, as in topic==/tasks/exit, changes no valid filter.
	case r == eof || r == ',' || r == '.' || isOperatorRune(r) || !isValueRune(r):
		return "", p.errorf(start, "expected value or quoted")
	}
	for isValueRune(p.peek()) {
		p.next()
	}
	return p.input[start:p.pos], nil
}

// quoted scans a literal delimited by the byte under the parser, returning
// its unescaped text. A newline may not appear unescaped, as in Go.
func (p *parser) quoted() (string, error) {
	start := p.pos
	delim := p.input[start]
	escaped := false
	i := start + 1
	for ; i < len(p.input) && p.input[i] != delim; i++ {
		switch p.input[i] {
		case '\n':
			return "", p.errorf(start, "quoted literal not terminated")
		case '\\':
			// Skip the escaped byte, so that an escaped delimiter does not
			// end the literal; unquote checks the sequence itself.
			escaped = true
			i++
		}
	}
	if i >= len(p.input) {
		return "", p.errorf(start, "quoted literal not terminated")
	}
	p.pos = i + 1

	body := p.input[start+1 : i]
	if !escaped {
		return body, nil
	}
	s, off, err := unquote(body, delim)
	if err != nil {
		return "", p.errorf(start+1+off, "illegal escape sequence")
	}
	return s, nil
}

// altQuoted reports a '/' or '|' quote where only a regular expression may
// have one, after checking it is well formed, so that the message says what
// containerd's would.
func (p *parser) altQuoted() error {
	start := p.pos
	if _, err := p.quoted(); err != nil {
		return err
	}
	return p.errorf(start, "invalid quote encountered")
}

func (p *parser) peek() rune {
	if p.pos >= len(p.input) {
		return eof
	}
	if c := p.input[p.pos]; c < utf8.RuneSelf {
		return rune(c)
	}
	r, _ := utf8.DecodeRuneInString(p.input[p.pos:])
	return r
}

func (p *parser) next() {
	_, w := utf8.DecodeRuneInString(p.input[p.pos:])
	p.pos += w
}

func (p *parser) skipSpace() {
	for r := p.peek(); r != eof && unicode.IsSpace(r); r = p.peek() {
		p.next()
	}
}

func (p *parser) errorf(pos int, format string, args ...any) error {
	return &ParseError{Input: p.input, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func isFieldRune(r rune) bool {
	return r == '-' || r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
}

func isOperatorRune(r rune) bool {
	return r == '=' || r == '!' || r == '~'
}

// isValueRune reports whether r may appear in a bare value: anything
// printable but the selector separator and space.
func isValueRune(r rune) bool {
	return r != ',' && r != eof && !unicode.IsSpace(r) && unicode.IsGraphic(r)
}
