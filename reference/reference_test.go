package reference

import (
	"errors"
	"testing"

	"github.com/llitfkitfk/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
)

// The cases and expected values are containerd's (pkg/reference).
func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in   string
		normalized string // String(); the input when empty
		hostname   string
		digest     digest.Digest
		want       Spec
		err        error
	}{
		{name: "Basic", in: "docker.io/library/redis:foo?fooo=asdf", normalized: "docker.io/library/redis:foo", hostname: "docker.io",
			want: Spec{Locator: "docker.io/library/redis", Object: "foo"}},
		{name: "BasicWithDigest", in: "docker.io/library/redis:foo@sha256:abcdef?fooo=asdf", normalized: "docker.io/library/redis:foo@sha256:abcdef", hostname: "docker.io", digest: "sha256:abcdef",
			want: Spec{Locator: "docker.io/library/redis", Object: "foo@sha256:abcdef"}},
		{name: "DigestOnly", in: "docker.io/library/redis@sha256:abcdef?fooo=asdf", normalized: "docker.io/library/redis@sha256:abcdef", hostname: "docker.io", digest: "sha256:abcdef",
			want: Spec{Locator: "docker.io/library/redis", Object: "@sha256:abcdef"}},
		{name: "AtShortDigest", in: "docker.io/library/redis:obj@abcdef?fooo=asdf", normalized: "docker.io/library/redis:obj@abcdef", hostname: "docker.io", digest: "abcdef",
			want: Spec{Locator: "docker.io/library/redis", Object: "obj@abcdef"}},
		{name: "HostWithPort", in: "localhost:5000/library/redis:obj@abcdef?fooo=asdf", normalized: "localhost:5000/library/redis:obj@abcdef", hostname: "localhost:5000", digest: "abcdef",
			want: Spec{Locator: "localhost:5000/library/redis", Object: "obj@abcdef"}},
		{name: "HostnameRequired", in: "/docker.io/library/redis:obj@abcdef?fooo=asdf", err: ErrHostnameRequired},
		{name: "NoObject", in: "docker.io/library/redis?fooo=asdf", normalized: "docker.io/library/redis", hostname: "docker.io",
			want: Spec{Locator: "docker.io/library/redis"}},
		{name: "Subdomain", in: "sub-dom1.foo.com/bar/baz/quux:latest", hostname: "sub-dom1.foo.com",
			want: Spec{Locator: "sub-dom1.foo.com/bar/baz/quux", Object: "latest"}},
		{name: "SubdomainWithLongTag", in: "sub-dom1.foo.com/bar/baz/quux:some-long-tag", hostname: "sub-dom1.foo.com",
			want: Spec{Locator: "sub-dom1.foo.com/bar/baz/quux", Object: "some-long-tag"}},
		{name: "AGCRAppears", in: "b.gcr.io/test.example.com/my-app:test.example.com", hostname: "b.gcr.io",
			want: Spec{Locator: "b.gcr.io/test.example.com/my-app", Object: "test.example.com"}},
		{name: "Punycode", in: "xn--n3h.com/myimage:xn--n3h.com", hostname: "xn--n3h.com",
			want: Spec{Locator: "xn--n3h.com/myimage", Object: "xn--n3h.com"}},
		{name: "PunycodeWithDigest", in: "xn--7o8h.com/myimage:xn--7o8h.com@sha512:fffffff", hostname: "xn--7o8h.com", digest: "sha512:fffffff",
			want: Spec{Locator: "xn--7o8h.com/myimage", Object: "xn--7o8h.com@sha512:fffffff"}},
		{name: "SchemeDefined", in: "http://xn--7o8h.com/myimage:xn--7o8h.com@sha512:fffffff", err: ErrInvalid},
		{name: "DotDotRewritesHost", in: "example.com/../other/image:latest", err: ErrInvalid},
		{name: "EncodedDotDotRewritesHost", in: "example.com/%2e%2e/other/image:latest", err: ErrInvalid},
		{name: "DotDotComponentInPath", in: "example.com/library/../image:latest", err: ErrInvalid},
		// Beyond containerd's table.
		{name: "HostOnly", in: "docker.io", hostname: "docker.io", want: Spec{Locator: "docker.io"}},
		{name: "IPv6Host", in: "[::1]:5000/repo:tag", hostname: "[::1]:5000", want: Spec{Locator: "[::1]:5000/repo", Object: "tag"}},
		{name: "CleanedPath", in: "example.com//a/./b/:tag", normalized: "example.com/a/b:tag", hostname: "example.com",
			want: Spec{Locator: "example.com/a/b", Object: "tag"}},
		{name: "Fragment", in: "example.com/a:tag#frag", normalized: "example.com/a:tag", hostname: "example.com",
			want: Spec{Locator: "example.com/a", Object: "tag"}},
		{name: "EmptyString", in: "", err: ErrHostnameRequired},
		{name: "BadPort", in: "example.com:tag/repo", err: ErrInvalid},
		{name: "NoSlashTag", in: "redis:latest", err: ErrInvalid},
		{name: "UserInfo", in: "user@example.com/repo", err: ErrInvalid},
		{name: "DotHost", in: "./repo", err: ErrInvalid},
		{name: "BadEscape", in: "example.com/a%zz", err: ErrInvalid},
		{name: "ControlChar", in: "example.com/a\n:tag", err: ErrInvalid},
		{name: "Space", in: "exa mple.com/a", err: ErrInvalid},
		{name: "EmptyIPv6", in: "[]/repo", err: ErrInvalid},
		{name: "IPv6Zone", in: "[fe80::1%25eth0]/repo", err: ErrInvalid},
		{name: "BadFragmentEscape", in: "example.com/a#%zz", err: ErrInvalid},
		{name: "ControlInFragment", in: "example.com/a:t#\x01", normalized: "example.com/a:t", hostname: "example.com",
			want: Spec{Locator: "example.com/a", Object: "t"}},
		{name: "ObjectWithoutPath", in: "0/:0", err: ErrInvalid}, // "0:0" would be a host and port
		{name: "EscapedPercent", in: "example.com/a%25", err: ErrInvalid},
		{name: "EscapedQuery", in: "example.com/a:b%3fc", err: ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := Parse(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("Parse(%q) = %#v, %v; want %v (an invalid argument)", tc.in, spec, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if spec != tc.want {
				t.Fatalf("Parse(%q) = %#v, want %#v", tc.in, spec, tc.want)
			}
			if tc.normalized == "" {
				tc.normalized = tc.in
			}
			if spec.String() != tc.normalized {
				t.Errorf("String() = %q, want %q", spec.String(), tc.normalized)
			}
			if spec.Digest() != tc.digest {
				t.Errorf("Digest() = %q, want %q", spec.Digest(), tc.digest)
			}
			if spec.Hostname() != tc.hostname {
				t.Errorf("Hostname() = %q, want %q", spec.Hostname(), tc.hostname)
			}
		})
	}
}

func TestSplitObject(t *testing.T) {
	for obj, want := range map[string][2]string{
		"":                 {"", ""},
		"latest":           {"latest", ""},
		"@sha256:abcdef":   {"", "sha256:abcdef"},
		"v1@sha256:abcdef": {"v1", "sha256:abcdef"},
		"v1@abcdef":        {"v1", "abcdef"},
	} {
		tag, d := SplitObject(obj)
		if tag != want[0] || string(d) != want[1] {
			t.Errorf("SplitObject(%q) = %q, %q; want %q, %q", obj, tag, d, want[0], want[1])
		}
	}
}

// FuzzParse checks that whatever parses is stable: its String() parses to
// the same Spec.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"docker.io/library/redis:foo@sha256:abcdef?x=y", "localhost:5000/a/b@abc", "[::1]:5000/repo:tag",
		"example.com/%2e%2e/x", "example.com//a/./b", "a/b:c:d@e@f", "h", "/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := Parse(s)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("Parse(%q): %v is not an invalid argument", s, err)
			}
			return
		}
		again, err := Parse(spec.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %q, which does not parse: %v", s, spec, err)
		}
		if again != spec {
			t.Fatalf("Parse(%q) = %#v, but its String %q parses to %#v", s, spec, spec.String(), again)
		}
	})
}
