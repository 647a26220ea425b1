package docker

import (
	"errors"
	"strings"
	"testing"

	"github.com/llitfkitfk/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
)

const (
	sha256Hex = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
	sha512Hex = sha256Hex + sha256Hex
)

// The cases and expected values are distribution's (reference_test.go),
// which docker and containerd use.
func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in                        string
		domain, path, tag, digest string
	}{
		{in: "test_com", path: "test_com"},
		{in: "test.com:tag", path: "test.com", tag: "tag"},
		{in: "test.com:5000", path: "test.com", tag: "5000"},
		{in: "test.com/repo:tag", domain: "test.com", path: "repo", tag: "tag"},
		{in: "test:5000/repo", domain: "test:5000", path: "repo"},
		{in: "test:5000/repo:tag", domain: "test:5000", path: "repo", tag: "tag"},
		{in: "test:5000/repo@sha256:" + sha256Hex, domain: "test:5000", path: "repo", digest: "sha256:" + sha256Hex},
		{in: "test:5000/repo:tag@sha256:" + sha256Hex, domain: "test:5000", path: "repo", tag: "tag", digest: "sha256:" + sha256Hex},
		{in: "lowercase:Uppercase", path: "lowercase", tag: "Uppercase"},
		{in: strings.Repeat("a/", 127) + "a:tag-puts-this-over-max", domain: "a", path: strings.Repeat("a/", 126) + "a", tag: "tag-puts-this-over-max"},
		{in: "sub-dom1.foo.com/bar/baz/quux", domain: "sub-dom1.foo.com", path: "bar/baz/quux"},
		{in: "sub-dom1.foo.com/bar/baz/quux:some-long-tag", domain: "sub-dom1.foo.com", path: "bar/baz/quux", tag: "some-long-tag"},
		{in: "b.gcr.io/test.example.com/my-app:test.example.com", domain: "b.gcr.io", path: "test.example.com/my-app", tag: "test.example.com"},
		{in: "xn--n3h.com/myimage:xn--n3h.com", domain: "xn--n3h.com", path: "myimage", tag: "xn--n3h.com"},
		{in: "xn--7o8h.com/myimage:xn--7o8h.com@sha512:" + sha512Hex, domain: "xn--7o8h.com", path: "myimage", tag: "xn--7o8h.com", digest: "sha512:" + sha512Hex},
		{in: "foo_bar.com:8080", path: "foo_bar.com", tag: "8080"},
		{in: "foo/foo_bar.com:8080", domain: "foo", path: "foo_bar.com", tag: "8080"},
		{in: "192.168.1.1", path: "192.168.1.1"},
		{in: "192.168.1.1:tag", path: "192.168.1.1", tag: "tag"},
		{in: "192.168.1.1:5000", path: "192.168.1.1", tag: "5000"},
		{in: "192.168.1.1/repo", domain: "192.168.1.1", path: "repo"},
		{in: "192.168.1.1:5000/repo", domain: "192.168.1.1:5000", path: "repo"},
		{in: "192.168.1.1:5000/repo:5050", domain: "192.168.1.1:5000", path: "repo", tag: "5050"},
		{in: "[2001:db8::1]/repo", domain: "[2001:db8::1]", path: "repo"},
		{in: "[2001:db8:1:2:3:4:5:6]/repo:tag", domain: "[2001:db8:1:2:3:4:5:6]", path: "repo", tag: "tag"},
		{in: "[2001:db8::1]:5000/repo", domain: "[2001:db8::1]:5000", path: "repo"},
		{in: "[2001:db8::1]:5000/repo:tag", domain: "[2001:db8::1]:5000", path: "repo", tag: "tag"},
		{in: "[2001:db8::1]:5000/repo@sha256:" + sha256Hex, domain: "[2001:db8::1]:5000", path: "repo", digest: "sha256:" + sha256Hex},
		{in: "[2001:db8::1]:5000/repo:tag@sha256:" + sha256Hex, domain: "[2001:db8::1]:5000", path: "repo", tag: "tag", digest: "sha256:" + sha256Hex},
		{in: "[2001:db8::]:5000/repo", domain: "[2001:db8::]:5000", path: "repo"},
		{in: "[::1]:5000/repo", domain: "[::1]:5000", path: "repo"},
		{in: "example.com/" + strings.Repeat("a", 255) + ":tag", domain: "example.com", path: strings.Repeat("a", 255), tag: "tag"},
		{in: "localhost/a__b.c-d---e/f", domain: "localhost", path: "a__b.c-d---e/f"},
		{in: "Uppercase/lowercase:tag", domain: "Uppercase", path: "lowercase", tag: "tag"},
		{in: "x:" + strings.Repeat("t", 128), path: "x", tag: strings.Repeat("t", 128)},
	} {
		t.Run(tc.in, func(t *testing.T) {
			ref, err := Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if ref.Domain() != tc.domain || ref.Path() != tc.path || ref.Tag() != tc.tag || string(ref.Digest()) != tc.digest {
				t.Errorf("Parse(%q) = domain %q path %q tag %q digest %q; want %q %q %q %q",
					tc.in, ref.Domain(), ref.Path(), ref.Tag(), ref.Digest(), tc.domain, tc.path, tc.tag, tc.digest)
			}
			if ref.String() != tc.in {
				t.Errorf("String() = %q, want %q", ref.String(), tc.in)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // in the message
		is   error  // also wrapped, besides errdefs.ErrInvalidArgument
	}{
		{in: "", want: "repository name must have at least one component"},
		{in: ":justtag", want: "invalid repository name"},
		{in: "@sha256:" + sha256Hex, want: "invalid repository name"},
		{in: "repo@sha256:ffffffffffffffffffffffffffffffffff", is: digest.ErrDigestInvalidLength},
		{in: "validname@invaliddigest:" + sha256Hex, is: digest.ErrDigestUnsupported},
		{in: "repo@sha256:" + strings.ToUpper(sha256Hex), is: digest.ErrDigestInvalidFormat},
		{in: "repo@sha256:" + sha256Hex[:31], want: "invalid digest"},
		{in: "repo@sha256", want: "invalid digest"},
		{in: "repo@1sha:" + sha256Hex, want: "invalid digest"},
		{in: "repo@sha256:" + sha256Hex + "@sha256:" + sha256Hex, want: "invalid digest"},
		{in: "Uppercase:tag", want: "repository name (Uppercase) must be lowercase"},
		{in: "test:5000/Uppercase/lowercase:tag", want: "must be lowercase"},
		{in: "domain/" + strings.Repeat("a", 256) + ":tag", want: "must not be more than 255 characters"},
		{in: "aa/asdf$$^/aa", want: "invalid repository name"},
		{in: "[2001:db8::1]", want: "invalid tag"},
		{in: "[2001:db8::1]:5000", want: "invalid repository name"},
		{in: "[2001:db8::1]:tag", want: "invalid repository name"},
		{in: "[fe80::1%eth0]:5000/repo", want: "invalid repository name"},
		{in: "[fe80::1%@invalidzone]:5000/repo", want: "invalid"},
		{in: "repo:-tag", want: "invalid tag"},
		{in: "repo:.tag", want: "invalid tag"},
		{in: "repo:", want: "invalid tag"},
		{in: "repo:" + strings.Repeat("t", 129), want: "invalid tag"},
		{in: "repo:ta/g", want: "invalid"},
		{in: "example.com:/repo", want: "invalid repository name"},
		{in: "example.com:50a/repo", want: "invalid repository name"},
		{in: "-example.com/repo", want: "invalid repository name"},
		{in: "repo/", want: "invalid repository name"},
		{in: "/repo", want: "invalid repository name"},
		{in: "a//b", want: "invalid repository name"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			ref, err := Parse(tc.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", tc.in, ref)
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("Parse(%q): %v does not wrap ErrInvalidArgument", tc.in, err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Parse(%q): %v does not wrap %v", tc.in, err, tc.is)
			}
			if !strings.HasPrefix(err.Error(), "invalid reference format") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q): %q, want it to contain %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestWith(t *testing.T) {
	ref, err := Parse("docker.io/library/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if got := ref.WithDefaultTag().String(); got != "docker.io/library/busybox:latest" {
		t.Errorf("WithDefaultTag = %q", got)
	}
	tagged, err := ref.WithTag("1.36")
	if err != nil || tagged.String() != "docker.io/library/busybox:1.36" {
		t.Fatalf("WithTag = %v, %v", tagged, err)
	}
	if got := tagged.WithDefaultTag(); got != tagged {
		t.Errorf("WithDefaultTag changed a tagged reference: %v", got)
	}
	both, err := tagged.WithDigest("sha256:" + sha256Hex)
	if err != nil || both.String() != "docker.io/library/busybox:1.36@sha256:"+sha256Hex {
		t.Fatalf("WithDigest = %v, %v", both, err)
	}
	digested, _ := ref.WithDigest("sha256:" + sha256Hex)
	if got := digested.WithDefaultTag(); got != digested {
		t.Errorf("WithDefaultTag tagged a digested reference: %v", got)
	}
	if got := both.TrimNamed().String(); got != "docker.io/library/busybox" {
		t.Errorf("TrimNamed = %q", got)
	}
	if _, err := ref.WithTag("-foo"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("WithTag(-foo): %v", err)
	}
	if _, err := ref.WithDigest("foo"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("WithDigest(foo): %v", err)
	}
}
