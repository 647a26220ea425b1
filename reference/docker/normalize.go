package docker

import "strings"

const (
	// DefaultDomain is the registry a reference without one names.
	DefaultDomain = "docker.io"
	// legacyDefaultDomain is an old name of DefaultDomain, rewritten to it.
	legacyDefaultDomain = "index.docker.io"
	// officialRepoPrefix is the path prefix of docker.io's official images.
	officialRepoPrefix = "library/"
)

// ParseNormalized parses the forms users type and returns the canonical
// reference, as docker and containerd do:
//
//	busybox                 → docker.io/library/busybox
//	library/busybox         → docker.io/library/busybox
//	user/repo:tag           → docker.io/user/repo:tag
//	index.docker.io/user/r  → docker.io/user/r
//	localhost/repo          → localhost/repo
//	example.com:5000/repo   → example.com:5000/repo
//
// The first component is a domain when it is "localhost", contains a '.' or
// a ':', or has an uppercase letter; otherwise the reference is on docker.io.
// It adds no tag: see WithDefaultTag. Unlike distribution, it refuses a first
// component it takes for a domain that is not a valid one ("foo_bar.com/x"),
// so a normalised reference always has a domain.
func ParseNormalized(s string) (Reference, error) {
	if len(s) == 64 && isLowerHex(s) {
		return Reference{}, invalid("invalid repository name (%s), cannot specify 64-byte hexadecimal strings", s)
	}
	domain, remainder := splitDockerDomain(s)
	if remote, _, _ := strings.Cut(remainder, ":"); strings.ToLower(remote) != remote {
		return Reference{}, invalid("repository name (%s) must be lowercase", remote)
	}
	// distribution would read "foo_bar.com/x" as a path without a domain;
	// the user named a host there, so say that it is not a valid one.
	if !validDomain(domain) {
		return Reference{}, invalid("invalid domain %q", domain)
	}
	return Parse(domain + "/" + remainder)
}

// ParseDockerRef is ParseNormalized for references that name one image to
// fetch, as containerd's CRI and ctr use them: a name alone gets ":latest",
// and of a tag and a digest only the digest is kept, since it decides.
func ParseDockerRef(s string) (Reference, error) {
	ref, err := ParseNormalized(s)
	if err != nil {
		return Reference{}, err
	}
	if ref.digest != "" {
		ref.tag = ""
	}
	return ref.WithDefaultTag(), nil
}

// splitDockerDomain splits s into the domain and the rest, supplying
// docker.io and its "library/" prefix where the familiar form leaves them
// out.
func splitDockerDomain(s string) (domain, remainder string) {
	first, rest, ok := strings.Cut(s, "/")
	switch {
	case !ok:
		domain, remainder = DefaultDomain, s
	case first == legacyDefaultDomain:
		domain, remainder = DefaultDomain, rest
	case first == "localhost", strings.ContainsAny(first, ".:"), strings.ToLower(first) != first:
		domain, remainder = first, rest
	default:
		domain, remainder = DefaultDomain, s
	}
	if domain == DefaultDomain && !strings.ContainsRune(remainder, '/') {
		remainder = officialRepoPrefix + remainder
	}
	return domain, remainder
}

// Familiar is the short form docker and ctr print: docker.io and the
// "library/" of official images left out ("busybox:latest",
// "user/repo@sha256:…"); other references are printed in full.
func (r Reference) Familiar() string {
	return withObject(r.FamiliarName(), r.tag, r.digest)
}

// FamiliarName is the familiar form of the name alone.
func (r Reference) FamiliarName() string {
	if r.domain != DefaultDomain {
		return r.Name()
	}
	if p, ok := strings.CutPrefix(r.path, officialRepoPrefix); ok && !strings.ContainsRune(p, '/') {
		return p
	}
	return r.path
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) && !('a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}
