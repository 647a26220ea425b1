package filters

import (
	"errors"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		"name",
		"name==foo",
		"name!=foo",
		"labels.foo==bar",
		`labels."foo.bar"==baz`,
		"name~=^f",
		"name~=/[abc]{0,2}/",
		"name~=|牛|",
		"image==docker.io/library/busybox:latest",
		`topic=="/tasks/exit",namespace==default`,
		"topic==/tasks/exit | namespace~=^d",
		`labels."a\tb\x41\u725b\\\""`,
		"name==foo,,bar",
		"name~=[",
		`name=="foo`,
		"foo\x00bar",
		"name==\xff",
	} {
		f.Add(seed)
	}

	// The adaptor answers every fieldpath, some as present and some not, so
	// that every operator is exercised both ways.
	adaptor := AdapterFunc(func(fieldpath []string) (string, bool) {
		v := strings.Join(fieldpath, ".")
		return v, len(v)%2 == 0
	})

	f.Fuzz(func(t *testing.T, input string) {
		filter, err := Parse(input)
		if err != nil {
			if filter != nil {
				t.Fatalf("Parse(%q) returned both a filter and %v", input, err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Pos < 0 || pe.Pos > len(input) {
				t.Fatalf("Parse(%q) = %v, want a *ParseError within the input", input, err)
			}
			_ = err.Error()
			return
		}
		if filter == nil {
			t.Fatalf("Parse(%q) returned neither filter nor error", input)
		}
		filter.Match(adaptor)
	})
}
