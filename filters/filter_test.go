package filters

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/llitfkitfk/containerd/errdefs"
)

type object struct {
	name, image, topic, namespace, other string
	labels                               map[string]string
}

func (o object) Field(fieldpath []string) (string, bool) {
	if len(fieldpath) == 0 {
		return "", false
	}
	field := func(v string) (string, bool) { return v, v != "" }
	switch fieldpath[0] {
	case "name":
		return field(o.name)
	case "image":
		return field(o.image)
	case "topic":
		return field(o.topic)
	case "namespace":
		return field(o.namespace)
	case "other":
		return field(o.other)
	case "labels":
		v, ok := o.labels[strings.Join(fieldpath[1:], ".")]
		return v, ok
	}
	return "", false
}

var corpus = []object{
	0:  {name: "foo", labels: map[string]string{"foo": "true"}},
	1:  {name: "bar"},
	2:  {name: "foo", labels: map[string]string{"foo": "present", "more complex label": "present"}},
	3:  {name: "bar", labels: map[string]string{"bar": "true"}},
	4:  {name: "fooer", labels: map[string]string{`more complex label with \ and "`: "present"}},
	5:  {name: "baz", other: "too complex, yo"},
	6:  {name: "bazo", other: "abc"},
	7:  {name: "compound", labels: map[string]string{"foo": "omg_asdf.asdf-qwer", "foo.bar": "baz"}},
	8:  {name: "busybox", image: "docker.io/library/busybox:latest"},
	9:  {topic: "/tasks/exit", namespace: "default"},
	10: {topic: "/tasks/exit", namespace: "other"},
	11: {topic: "/namespaces/create", namespace: "default"},
}

func matching(t *testing.T, f Filter) []int {
	t.Helper()
	var got []int
	for i, o := range corpus {
		if f.Match(o) {
			got = append(got, i)
		}
	}
	return got
}

func all() []int {
	var idx []int
	for i := range corpus {
		idx = append(idx, i)
	}
	return idx
}

func TestParseMatch(t *testing.T) {
	for _, tc := range []struct {
		input string
		want  []int
	}{
		{"", all()},
		{"name", []int{0, 1, 2, 3, 4, 5, 6, 7, 8}},
		{"name==foo", []int{0, 2}},
		{"name!=foo", []int{1, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
		{"labels.foo", []int{0, 2, 7}},
		{"labels.foo,name", []int{0, 2, 7}},
		{"labels.foo==bar", nil},
		{"labels.foo==true", []int{0}},
		{`labels."foo.bar"==baz`, []int{7}},
		{"labels.foo==omg_asdf.asdf-qwer", []int{7}},
		{"name~=^f", []int{0, 2, 4}},
		{"name~=/^f/", []int{0, 2, 4}},
		{"name~=|^f|", []int{0, 2, 4}},
		{"name~=\"^ba.$\"", []int{1, 3, 5}},
		{`name~=/^ba\/?z$/`, []int{5}},
		{"image==docker.io/library/busybox:latest", []int{8}},
		{`other=="too complex, yo"`, []int{5}},
		{"other~=[abc]+,name!=foo", []int{5, 6}},
		{`other~=/[abc]{1,2}/,name!=foo`, []int{5, 6}},
		{`name==foo,labels."more complex label"`, []int{2}},
		{`labels."more complex label with \\ and \""==present`, []int{4}},
		{`topic=="/tasks/exit",namespace==default`, []int{9}},
		{`topic==/tasks/exit,namespace==default`, []int{9}},
		{`topic!=/tasks/exit,topic`, []int{11}},
		{"topic~=^/namespaces/", []int{11}},
		{"name==foo | name==bar", []int{0, 1, 2, 3}},
		{`name=="foo"|name=="bar"`, []int{0, 1, 2, 3}},
		{"labels.bar|labels.foo==true", []int{0, 3}},
		{"namespace==other | topic~=^/namespaces/,namespace==default", []int{10, 11}},
		// Inside a bare value '|' is text, as in containerd.
		{"name==foo|name==bar", nil},
		{"name~=^(foo|bar)$", []int{0, 1, 2, 3}},
		{" name == foo , labels. foo == true ", []int{0}},
		{"name==\"\\x66oo\"", []int{0, 2}},
		{"name~=^ba\\w+", []int{1, 3, 5, 6}},
		// Absent fields read as "" for != and ~=, as in containerd.
		{"other~=^$,name==foo", []int{0, 2}},
		{`other!=""`, []int{5, 6}},
	} {
		t.Run(tc.input, func(t *testing.T) {
			f, err := Parse(tc.input)
			if err != nil {
				t.Fatal(err)
			}
			if got := matching(t, f); !slices.Equal(got, tc.want) {
				t.Errorf("Parse(%q) matched %v, want %v", tc.input, got, tc.want)
			}
		})
	}
}

func TestParseAll(t *testing.T) {
	for _, tc := range []struct {
		inputs []string
		want   []int
	}{
		{nil, all()},
		{[]string{""}, all()},
		{[]string{"", ""}, all()},
		{[]string{"name==foo"}, []int{0, 2}},
		{[]string{"name==foo", "name==bar"}, []int{0, 1, 2, 3}},
		{[]string{"name==foo", ""}, all()},
		{[]string{"name==foo,labels.foo==true", "topic==/tasks/exit"}, []int{0, 9, 10}},
	} {
		f, err := ParseAll(tc.inputs...)
		if err != nil {
			t.Fatalf("ParseAll(%q): %v", tc.inputs, err)
		}
		if got := matching(t, f); !slices.Equal(got, tc.want) {
			t.Errorf("ParseAll(%q) matched %v, want %v", tc.inputs, got, tc.want)
		}
	}

	if _, err := ParseAll("name==foo", "name=="); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ParseAll with a bad filter: got %v, want invalid argument", err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		input string
		pos   int
		msg   string
	}{
		{"name==", 6, "expected value or quoted"},
		{"==foo", 0, "expected field or quoted"},
		{"name~=[", 6, "invalid regular expression: error parsing regexp: missing closing ]: `[`"},
		{"name~=/[/", 6, "invalid regular expression: error parsing regexp: missing closing ]: `[`"},
		{`name=="foo`, 6, "quoted literal not terminated"},
		{"name==\"fo\no\"", 6, "quoted literal not terminated"},
		{`labels."foo==bar`, 7, "quoted literal not terminated"},
		{`name~=/foo`, 6, "quoted literal not terminated"},
		{`name==foo\`, -1, ""}, // a backslash is text in a bare value
		{`name=="fo\o"`, 9, "illegal escape sequence"},
		{`name=="\xaz"`, 7, "illegal escape sequence"},
		{`name~=/a\d/`, 8, "illegal escape sequence"},
		{`name~=/a\"/`, 8, "illegal escape sequence"},
		{"name==foo,,bar", 10, "expected field or quoted"},
		{"name==foo,", 10, "expected field or quoted"},
		{"labels.", 7, "expected field or quoted"},
		{"labels.?foo", 7, "expected field or quoted"},
		{"labels.|foo|==bar", 7, "invalid quote encountered"},
		{"labels.ns/key==value", 9, `expected an operator ("=="|"!="|"~=")`},
		{"name==|foo|", 6, "invalid quote encountered"},
		{"name=foo", 4, `unsupported operator "="`},
		{"name===foo", 4, `unsupported operator "==="`},
		{"name foo", 5, `expected an operator ("=="|"!="|"~=")`},
		{"name==foo bar", 10, `unexpected input: 'b'`},
		{"name==.foo", 6, "expected value or quoted"},
		{"image~=,id==x", 7, "expected value or quoted"},
		{"name==foo |", 11, "expected field or quoted"},
		{"| name", 0, "quoted literal not terminated"},
		{"name==foo ||name", 11, "quoted literal not terminated"},
		{"labels .foo", 7, `expected an operator ("=="|"!="|"~=")`},
		{"foo\x00bar", 3, "unexpected null"},
		{"name==\xff", 6, "invalid UTF-8"},
		{" ", 1, "expected field or quoted"},
	} {
		t.Run(tc.input, func(t *testing.T) {
			_, err := Parse(tc.input)
			if tc.pos < 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("got %v, want an invalid argument error", err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("got %T, want *ParseError", err)
			}
			if pe.Pos != tc.pos || pe.Msg != tc.msg {
				t.Errorf("got error at %d %q, want at %d %q (%v)", pe.Pos, pe.Msg, tc.pos, tc.msg, err)
			}
		})
	}
}

func TestParseErrorMessage(t *testing.T) {
	for input, want := range map[string]string{
		"name==foo,,bar": "filters: parse error: [name==foo, >|,|< bar]: expected field or quoted: invalid argument",
		"name==foo,":     "filters: parse error: [name==foo,]: expected field or quoted: invalid argument",
		"labels.牛牛":      "", // valid: fields are ASCII, but the marker must not split runes
		"labels.牛":       "filters: parse error: [labels. >|牛|< ]: expected field or quoted: invalid argument",
	} {
		_, err := Parse(input)
		switch {
		case want == "" && err == nil:
		case want == "":
			if !strings.Contains(err.Error(), ">|牛|<") {
				t.Errorf("Parse(%q) = %v, want the marker on a whole rune", input, err)
			}
		case err == nil || err.Error() != want:
			t.Errorf("Parse(%q) = %v, want %s", input, err, want)
		}
	}
}

func TestUnquote(t *testing.T) {
	for _, tc := range []struct {
		input string
		want  string
	}{
		{`labels."a\tb"`, "a\tb"},
		{`labels."\u725b"`, "牛"},
		{`labels."\U0000725b"`, "牛"},
		{`labels."\x41\101"`, "AA"},
		{`labels."\\\""`, `\"`},
		{`labels."a'b"`, "a'b"},
	} {
		f, err := Parse(tc.input)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.input, err)
		}
		got := f.(*selector).fieldpath[1]
		if got != tc.want {
			t.Errorf("Parse(%q) field = %q, want %q", tc.input, got, tc.want)
		}
	}

	for _, tc := range []struct{ input, want string }{
		{`name~=|a\|b|`, "a|b"},
		{`name~=/a\/b/`, "a/b"},
		{`name~=/a\\.b/`, `a\.b`},
		{`name~=/a"b/`, `a"b`},
	} {
		f, err := Parse(tc.input)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.input, err)
		}
		if got := f.(*selector).value; got != tc.want {
			t.Errorf("Parse(%q) value = %q, want %q", tc.input, got, tc.want)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	f, err := Parse(`name~=^f,labels."foo"==true|topic==/tasks/exit`)
	if err != nil {
		t.Fatal(err)
	}
	var o Adaptor = corpus[0]
	if n := testing.AllocsPerRun(100, func() { f.Match(o) }); n != 0 {
		t.Errorf("Match allocates %v times", n)
	}
}

func BenchmarkParse(b *testing.B) {
	for b.Loop() {
		if _, err := Parse(`topic~=^/tasks/,namespace==default,labels."io.example/tier"==prod`); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	f, err := Parse(`topic~=^/tasks/,namespace==default`)
	if err != nil {
		b.Fatal(err)
	}
	var o Adaptor = corpus[9]
	for b.Loop() {
		f.Match(o)
	}
}
