package filters

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// unquote interprets the Go escape sequences in s, the body of a literal
// delimited by delim. Inside '/' or '|' literals the delimiter may be escaped
// too; no other quote may be. On failure it returns the offset of the bad
// escape.
func unquote(s string, delim byte) (string, int, error) {
	// strconv accepts \" only when told the literal is double-quoted, and
	// neither quote escape when told 0.
	var quote byte
	if delim == '"' {
		quote = '"'
	}

	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		if s[i] != '\\' {
			j := strings.IndexByte(s[i:], '\\')
			if j < 0 {
				j = len(s) - i
			}
			b.WriteString(s[i : i+j])
			i += j
			continue
		}
		if quote == 0 && i+1 < len(s) && s[i+1] == delim {
			b.WriteByte(delim)
			i += 2
			continue
		}
		r, multibyte, tail, err := strconv.UnquoteChar(s[i:], quote)
		if err != nil {
			return "", i, err
		}
		// \x and octal escapes name bytes, not runes.
		if r < utf8.RuneSelf || !multibyte {
			b.WriteByte(byte(r))
		} else {
			b.WriteRune(r)
		}
		i = len(s) - len(tail)
	}
	return b.String(), 0, nil
}
