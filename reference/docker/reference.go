// Package docker parses image references as docker and containerd write
// them: [domain "/"] path [":" tag] ["@" digest].
//
// Parse reads a reference exactly as written. ParseNormalized reads the
// familiar forms users type ("busybox", "user/repo:tag") and returns the
// canonical reference ("docker.io/library/busybox"); Familiar gives the short
// form back. The grammar is distribution's:
//
//	reference        := name [ ":" tag ] [ "@" digest ]
//	name             := [domain "/"] path
//	domain           := host [":" port]
//	host             := domain-name | "[" IPv6 "]"
//	domain-name      := domain-component ["." domain-component]*
//	domain-component := /[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]/
//	port             := /[0-9]+/
//	path             := path-component ["/" path-component]*
//	path-component   := alpha-numeric [separator alpha-numeric]*
//	alpha-numeric    := /[a-z0-9]+/
//	separator        := /[_.]|__|[-]+/
//	tag              := /[\w][\w.-]{0,127}/
//	digest           := algorithm ":" /[0-9a-fA-F]{32,}/, and a digest go-digest accepts
//
// Every error wraps errdefs.ErrInvalidArgument.
package docker

import (
	_ "crypto/sha256" // digests of these algorithms validate
	_ "crypto/sha512"
	"fmt"
	"strings"

	"github.com/llitfkitfk/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
)

// MaxPathLength is the longest path (the name without its domain) a
// reference may have, as distribution (and so docker and containerd) allows.
const MaxPathLength = 255

// DefaultTag is the tag WithDefaultTag adds.
const DefaultTag = "latest"

// Reference is a parsed image reference. The zero value is not a valid
// reference; get one from Parse or ParseNormalized.
type Reference struct {
	domain string
	path   string
	tag    string
	digest digest.Digest
}

// Domain is the registry host, with its port if one was given; empty when
// the reference was parsed without normalisation and names none.
func (r Reference) Domain() string { return r.domain }

// Path is the repository path within the registry ("library/busybox").
func (r Reference) Path() string { return r.path }

// Name is the repository name: domain "/" path, or path alone.
func (r Reference) Name() string {
	if r.domain == "" {
		return r.path
	}
	return r.domain + "/" + r.path
}

// Tag is the tag, or "" when the reference has none.
func (r Reference) Tag() string { return r.tag }

// Digest is the digest, or "" when the reference has none.
func (r Reference) Digest() digest.Digest { return r.digest }

// IsNameOnly reports whether the reference has neither tag nor digest.
func (r Reference) IsNameOnly() bool { return r.tag == "" && r.digest == "" }

// String is the reference as written by its parts: name[:tag][@digest].
func (r Reference) String() string {
	return withObject(r.Name(), r.tag, r.digest)
}

func withObject(name, tag string, dgst digest.Digest) string {
	if tag != "" {
		name += ":" + tag
	}
	if dgst != "" {
		name += "@" + dgst.String()
	}
	return name
}

// Parse parses s exactly as written, with no normalisation: "busybox" is a
// reference with no domain and path "busybox".
func Parse(s string) (Reference, error) {
	if s == "" {
		return Reference{}, invalid("repository name must have at least one component")
	}
	rest := s
	var ref Reference
	if name, dgst, ok := strings.Cut(rest, "@"); ok {
		d, err := parseDigest(dgst)
		if err != nil {
			return Reference{}, err
		}
		ref.digest, rest = d, name
	}
	// A tag follows the last ':' that comes after the last '/': a ':'
	// before it can only be a port of the domain.
	if i := strings.LastIndexByte(rest, ':'); i > strings.LastIndexByte(rest, '/') {
		if !validTag(rest[i+1:]) {
			return Reference{}, invalid("invalid tag %q", rest[i+1:])
		}
		ref.tag, rest = rest[i+1:], rest[:i]
	}
	domain, path, err := splitName(rest)
	if err != nil {
		return Reference{}, err
	}
	ref.domain, ref.path = domain, path
	return ref, nil
}

// splitName splits a name into its domain and path. The first component is
// the domain when it is a valid domain and something follows it, as in
// distribution's grammar; otherwise the whole name is the path.
func splitName(name string) (domain, path string, err error) {
	if d, p, ok := strings.Cut(name, "/"); ok && validDomain(d) {
		domain, path = d, p
	} else {
		path = name
	}
	if !validPath(path) {
		if path != "" && validPath(strings.ToLower(path)) {
			return "", "", invalid("repository name (%s) must be lowercase", path)
		}
		return "", "", invalid("invalid repository name %q", name)
	}
	if len(path) > MaxPathLength {
		return "", "", invalid("repository name must not be more than %d characters", MaxPathLength)
	}
	return domain, path, nil
}

// WithTag returns r with tag set (and its digest, if any, kept).
func (r Reference) WithTag(tag string) (Reference, error) {
	if !validTag(tag) {
		return Reference{}, invalid("invalid tag %q", tag)
	}
	r.tag = tag
	return r, nil
}

// WithDigest returns r with dgst set (and its tag, if any, kept).
func (r Reference) WithDigest(dgst digest.Digest) (Reference, error) {
	d, err := parseDigest(string(dgst))
	if err != nil {
		return Reference{}, err
	}
	r.digest = d
	return r, nil
}

// WithDefaultTag returns r with tag "latest" when it has neither tag nor
// digest, and r unchanged otherwise.
func (r Reference) WithDefaultTag() Reference {
	if r.IsNameOnly() {
		r.tag = DefaultTag
	}
	return r
}

// TrimNamed returns the name alone, without tag or digest.
func (r Reference) TrimNamed() Reference {
	return Reference{domain: r.domain, path: r.path}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("invalid reference format: %s: %w", fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
}

// parseDigest checks s against the reference grammar's digest and against
// go-digest, which knows the algorithms and their lengths.
func parseDigest(s string) (digest.Digest, error) {
	alg, hex, ok := strings.Cut(s, ":")
	if !ok || !validAlgorithm(alg) || len(hex) < 32 || !isHex(hex) {
		return "", invalid("invalid digest %q", s)
	}
	d, err := digest.Parse(s)
	if err != nil {
		return "", fmt.Errorf("invalid reference format: digest %q: %w: %w", s, err, errdefs.ErrInvalidArgument)
	}
	return d, nil
}

// validAlgorithm: /[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*/
func validAlgorithm(s string) bool {
	i := 0
	for {
		if i == len(s) || !isLetter(s[i]) {
			return false
		}
		for i++; i < len(s) && (isLetter(s[i]) || isDigit(s[i])); i++ {
		}
		if i == len(s) {
			return true
		}
		if strings.IndexByte("-_+.", s[i]) < 0 {
			return false
		}
		i++
	}
}

// validTag: /[\w][\w.-]{0,127}/
func validTag(s string) bool {
	if len(s) == 0 || len(s) > 128 || !isWord(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isWord(s[i]) && s[i] != '.' && s[i] != '-' {
			return false
		}
	}
	return true
}

// validDomain: host [":" port], host a domain name or a bracketed IPv6
// address.
func validDomain(s string) bool {
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		host, port = s[:end+1], s[end+1:]
		if !validIPv6(host[1:end]) {
			return false
		}
	} else {
		if i := strings.IndexByte(s, ':'); i >= 0 {
			host, port = s[:i], s[i:]
		}
		if !validDomainName(host) {
			return false
		}
	}
	if port == "" {
		return true
	}
	return port[0] == ':' && len(port) > 1 && isDigits(port[1:])
}

// validIPv6 is the grammar's loose check: hex digits and colons.
func validIPv6(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHex(s[i:i+1]) && s[i] != ':' {
			return false
		}
	}
	return true
}

func validDomainName(s string) bool {
	for _, c := range strings.Split(s, ".") {
		if c == "" || c[0] == '-' || c[len(c)-1] == '-' {
			return false
		}
		for i := 0; i < len(c); i++ {
			if !isLetter(c[i]) && !isDigit(c[i]) && c[i] != '-' {
				return false
			}
		}
	}
	return true
}

// validPath: path-component ["/" path-component]*.
func validPath(s string) bool {
	for _, c := range strings.Split(s, "/") {
		if !validPathComponent(c) {
			return false
		}
	}
	return true
}

// validPathComponent: runs of [a-z0-9] joined by ".", "_", "__" or "-"+.
func validPathComponent(c string) bool {
	i := 0
	for {
		start := i
		for i < len(c) && (isLower(c[i]) || isDigit(c[i])) {
			i++
		}
		if i == start {
			return false // empty, or a separator at the start, end or twice
		}
		if i == len(c) {
			return true
		}
		start = i
		for i < len(c) && !isLower(c[i]) && !isDigit(c[i]) {
			i++
		}
		switch sep := c[start:i]; {
		case sep == ".", sep == "_", sep == "__":
		case strings.Trim(sep, "-") == "":
		default:
			return false
		}
	}
}

func isLower(b byte) bool  { return 'a' <= b && b <= 'z' }
func isLetter(b byte) bool { return isLower(b) || 'A' <= b && b <= 'Z' }
func isDigit(b byte) bool  { return '0' <= b && b <= '9' }
func isWord(b byte) bool   { return isLetter(b) || isDigit(b) || b == '_' }

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) && !('a' <= s[i] && s[i] <= 'f') && !('A' <= s[i] && s[i] <= 'F') {
			return false
		}
	}
	return s != ""
}
