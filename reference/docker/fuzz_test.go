package docker

import (
	"strings"
	"testing"

	"github.com/llitfkitfk/containerd/errdefs"
)

// FuzzParse checks that whatever parses round-trips: Parse gives back its
// input through String(), ParseNormalized gives a canonical reference whose
// String() parses to the same reference, and its Familiar() normalises back
// to it unless the path's first component would read as a domain.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"busybox", "library/busybox:1.36", "user/repo@" + busyboxDigest, "docker.io/library/busybox:latest@" + busyboxDigest,
		"index.docker.io/x", "localhost:5000/a/b", "[::1]:5000/repo:tag", "Foo/bar", "a__b.c-d---e/f:T_1.x-",
		"docker.io/foo.bar/x", "x@sha512:" + sha512Hex, "192.168.0.1:80",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ref, err := Parse(s); err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("Parse(%q): %v is not an invalid argument", s, err)
			}
		} else if ref.String() != s {
			t.Fatalf("Parse(%q).String() = %q", s, ref)
		}

		ref, err := ParseNormalized(s)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("ParseNormalized(%q): %v is not an invalid argument", s, err)
			}
			return
		}
		if ref.Domain() == "" {
			t.Fatalf("ParseNormalized(%q) = %q has no domain", s, ref)
		}
		again, err := Parse(ref.String())
		if err != nil || again != ref {
			t.Fatalf("ParseNormalized(%q) = %#v, but Parse(%q) = %#v, %v", s, ref, ref.String(), again, err)
		}
		if again, err := ParseNormalized(ref.String()); err != nil || again != ref {
			t.Fatalf("ParseNormalized(%q) = %#v, but ParseNormalized(%q) = %#v, %v", s, ref, ref.String(), again, err)
		}
		fam, err := ParseNormalized(ref.Familiar())
		first, _, _ := strings.Cut(ref.Path(), "/")
		ambiguous := ref.Domain() == DefaultDomain && (first == "localhost" || first == legacyDefaultDomain || strings.ContainsAny(first, ".:"))
		if !ambiguous && (err != nil || fam != ref) {
			t.Fatalf("ParseNormalized(%q) = %q, but its Familiar %q normalises to %q, %v", s, ref, ref.Familiar(), fam, err)
		}
	})
}
