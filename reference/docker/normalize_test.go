package docker

import (
	"strings"
	"testing"

	"github.com/llitfkitfk/containerd/errdefs"
)

const busyboxDigest = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582"

// Expected values from distribution's TestParseRepositoryInfo: every
// spelling of a repository gives the same full name, familiar name, domain
// and path.
func TestParseNormalized(t *testing.T) {
	for _, tc := range []struct {
		spellings      []string
		full, familiar string
		domain, path   string
	}{
		{[]string{"localhost/fooo"}, "localhost/fooo", "localhost/fooo", "localhost", "fooo"},
		{[]string{"localhost/fooo/bar"}, "localhost/fooo/bar", "localhost/fooo/bar", "localhost", "fooo/bar"},
		{[]string{"LOCALDOMAIN/fooo"}, "LOCALDOMAIN/fooo", "LOCALDOMAIN/fooo", "LOCALDOMAIN", "fooo"},
		{[]string{"fooo/bar", "docker.io/fooo/bar", "index.docker.io/fooo/bar"}, "docker.io/fooo/bar", "fooo/bar", "docker.io", "fooo/bar"},
		{[]string{"ubuntu", "library/ubuntu", "docker.io/library/ubuntu", "docker.io/ubuntu", "index.docker.io/library/ubuntu"}, "docker.io/library/ubuntu", "ubuntu", "docker.io", "library/ubuntu"},
		{[]string{"other/library", "docker.io/other/library"}, "docker.io/other/library", "other/library", "docker.io", "other/library"},
		{[]string{"127.0.0.1:8000/private/moonbase"}, "127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase", "127.0.0.1:8000", "private/moonbase"},
		{[]string{"example.com/privatebase"}, "example.com/privatebase", "example.com/privatebase", "example.com", "privatebase"},
		{[]string{"example.com:8000/private/moonbase"}, "example.com:8000/private/moonbase", "example.com:8000/private/moonbase", "example.com:8000", "private/moonbase"},
		{[]string{"ubuntu-12.04-base", "index.docker.io/library/ubuntu-12.04-base"}, "docker.io/library/ubuntu-12.04-base", "ubuntu-12.04-base", "docker.io", "library/ubuntu-12.04-base"},
		{[]string{"library/foo/bar", "docker.io/library/foo/bar"}, "docker.io/library/foo/bar", "library/foo/bar", "docker.io", "library/foo/bar"},
		{[]string{"Foo/bar"}, "Foo/bar", "Foo/bar", "Foo", "bar"},
		{[]string{"[fc00::1]:5000/docker"}, "[fc00::1]:5000/docker", "[fc00::1]:5000/docker", "[fc00::1]:5000", "docker"},
		{[]string{"192.168.0.1"}, "docker.io/library/192.168.0.1", "192.168.0.1", "docker.io", "library/192.168.0.1"},
		{[]string{"docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"}, "docker.io/library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", "docker.io", "library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"},
	} {
		for _, s := range tc.spellings {
			ref, err := ParseNormalized(s)
			if err != nil {
				t.Errorf("ParseNormalized(%q): %v", s, err)
				continue
			}
			if ref.String() != tc.full || ref.FamiliarName() != tc.familiar || ref.Domain() != tc.domain || ref.Path() != tc.path {
				t.Errorf("ParseNormalized(%q) = %q familiar %q domain %q path %q; want %q %q %q %q",
					s, ref, ref.FamiliarName(), ref.Domain(), ref.Path(), tc.full, tc.familiar, tc.domain, tc.path)
			}
		}
	}
}

func TestFamiliar(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                              "busybox",
		"busybox:latest@" + busyboxDigest:      "busybox:latest@" + busyboxDigest,
		"docker.io/library/busybox:1.36":       "busybox:1.36",
		"docker.io/user/repo@" + busyboxDigest: "user/repo@" + busyboxDigest,
		"localhost:5000/busybox:latest":        "localhost:5000/busybox:latest",
		"ghcr.io/containerd/busybox:1.36":      "ghcr.io/containerd/busybox:1.36",
		"docker.io/library/foo/bar:tag":        "library/foo/bar:tag",
	} {
		ref, err := ParseNormalized(in)
		if err != nil {
			t.Errorf("ParseNormalized(%q): %v", in, err)
		} else if got := ref.Familiar(); got != want {
			t.Errorf("ParseNormalized(%q).Familiar() = %q, want %q", in, got, want)
		}
	}
}

// Expected values from distribution's TestParseDockerRef.
func TestParseDockerRef(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                                        "docker.io/library/busybox:latest",
		"busybox:latest":                                 "docker.io/library/busybox:latest",
		"busybox@" + busyboxDigest:                       "docker.io/library/busybox@" + busyboxDigest,
		"library/busybox":                                "docker.io/library/busybox:latest",
		"docker.io/busybox":                              "docker.io/library/busybox:latest",
		"docker.io/library/busybox":                      "docker.io/library/busybox:latest",
		"docker.io/busybox:latest":                       "docker.io/library/busybox:latest",
		"library/busybox:latest":                         "docker.io/library/busybox:latest",
		"docker.io/library/busybox:latest":               "docker.io/library/busybox:latest",
		"gcr.io/library/busybox":                         "gcr.io/library/busybox:latest",
		"gcr.io/library/busybox:latest@" + busyboxDigest: "gcr.io/library/busybox@" + busyboxDigest,
	} {
		ref, err := ParseDockerRef(in)
		if err != nil {
			t.Errorf("ParseDockerRef(%q): %v", in, err)
		} else if ref.String() != want {
			t.Errorf("ParseDockerRef(%q) = %q, want %q", in, ref, want)
		}
	}
}

// Invalid names from distribution's TestValidateReferenceName.
func TestParseNormalizedInvalid(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://github.com/docker/docker", "invalid"},
		{"docker/Docker", "repository name (docker/Docker) must be lowercase"},
		{"docker.io/docker/Docker", "must be lowercase"},
		{"-docker", "invalid repository name"},
		{"-docker/docker", "invalid repository name"},
		{"-docker.io/docker/docker", "invalid domain"},
		{"docker///docker", "invalid repository name"},
		{"docker.io/docker///docker", "invalid repository name"},
		{"[fc00::1]", "invalid"},
		{"[fc00::1]:5000", "invalid"},
		{"fc00::1:5000/debian", "invalid"},
		{"[fe80::1%eth0]:5000/debian", "invalid"},
		{"[2001:db8:3:4::192.0.2.33]:5000/debian", "invalid"},
		{"1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", "cannot specify 64-byte hexadecimal strings"},
		{"", "invalid"},
		{"foo_bar.com/x", `invalid domain "foo_bar.com"`},
		{"-docker.io:5000/x", "invalid domain"},
	} {
		_, err := ParseNormalized(tc.in)
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseNormalized(%q): %v, want an invalid argument containing %q", tc.in, err, tc.want)
		}
	}
}

// The path-component rules, from distribution's TestValidateRemoteName.
func TestPathComponents(t *testing.T) {
	for _, valid := range []string{
		"docker/docker", "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
		"docker-rules/docker", "docker---rules/docker", "doc/docker", "d/docker", "jess/t", "dock__er/docker",
	} {
		if _, err := ParseNormalized(valid); err != nil {
			t.Errorf("ParseNormalized(%q): %v", valid, err)
		}
	}
	for _, invalid := range []string{
		"docker/Docker", "docker///docker", "-docker/docker", "docker-/docker", "-docker-/docker",
		"____/____", "_docker/_docker", "dock..er/docker", "dock_.er/docker", "dock-.er/docker",
		"dock___er/docker", "docker/",
		strings.Repeat("this_is_too_long_", 16) + "/docker",
	} {
		if _, err := ParseNormalized(invalid); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParseNormalized(%q): %v, want an invalid argument", invalid, err)
		}
	}
}

// Valid names from distribution's TestValidateReferenceName.
func TestParseNormalizedValid(t *testing.T) {
	for _, s := range []string{
		"docker/docker", "library/debian", "debian", "localhost/library/debian", "localhost/debian",
		"LOCALDOMAIN/library/debian", "LOCALDOMAIN/debian", "docker.io/docker/docker", "docker.io/library/debian",
		"docker.io/debian", "index.docker.io/docker/docker", "index.docker.io/library/debian", "index.docker.io/debian",
		"127.0.0.1:5000/docker/docker", "127.0.0.1:5000/library/debian", "127.0.0.1:5000/debian",
		"192.168.0.1", "192.168.0.1:80", "192.168.0.1:8/debian", "192.168.0.2:25000/debian",
		"[fc00::1]:5000/docker", "[fc00::1]:5000/docker/docker", "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
		"Docker/docker", "DOCKER/docker",
	} {
		if _, err := ParseNormalized(s); err != nil {
			t.Errorf("ParseNormalized(%q): %v", s, err)
		}
	}
}
