package archive

import (
	"testing"

	digest "github.com/opencontainers/go-digest"
)

func TestImageName(t *testing.T) {
	full := map[string]string{AnnotationImageName: "docker.io/library/app:1", AnnotationRefName: "1"}
	tagOnly := map[string]string{AnnotationRefName: "2"}
	fullRef := map[string]string{AnnotationRefName: "example.com/x:3"}
	for _, tc := range []struct {
		ann     map[string]string
		cleanup func(string) string
		want    string
	}{
		{full, nil, "docker.io/library/app:1"},
		{full, FilterRefPrefix("docker.io/library/app"), "docker.io/library/app:1"},
		{full, FilterRefPrefix("docker.io/library/ap"), ""},
		{full, FilterRefPrefix("example.com/other"), ""},
		{tagOnly, nil, "2"},
		{tagOnly, AddRefPrefix("example.com/x"), "example.com/x:2"},
		{tagOnly, FilterRefPrefix(""), ""},
		{fullRef, AddRefPrefix("example.com/y"), "example.com/x:3"},
		{fullRef, FilterRefPrefix("example.com/y"), ""},
		{nil, nil, ""},
	} {
		if got := ImageName(tc.ann, tc.cleanup); got != tc.want {
			t.Errorf("ImageName(%v) = %q, want %q", tc.ann, got, tc.want)
		}
	}
}

func TestNameForms(t *testing.T) {
	for _, tc := range []struct{ in, normal, familiar, oci string }{
		{"busybox", "docker.io/library/busybox:latest", "busybox:latest", "latest"},
		{"busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36", "1.36"},
		{"me/app:v1", "docker.io/me/app:v1", "me/app:v1", "v1"},
		{"example.com:5000/a/b:c", "example.com:5000/a/b:c", "example.com:5000/a/b:c", "c"},
	} {
		n, err := normalizeName(tc.in)
		if err != nil || n != tc.normal {
			t.Errorf("normalizeName(%q) = %q, %v; want %q", tc.in, n, err, tc.normal)
		}
		f, err := familiarName(n)
		if err != nil || f != tc.familiar {
			t.Errorf("familiarName(%q) = %q, %v; want %q", n, f, err, tc.familiar)
		}
		if o := ociRefName(n); o != tc.oci {
			t.Errorf("ociRefName(%q) = %q, want %q", n, o, tc.oci)
		}
	}
	d := "docker.io/library/busybox@" + digest.FromString("x").String()
	if o := ociRefName(d); o != d {
		t.Errorf("ociRefName(by digest) = %q, want the full name", o)
	}
}
