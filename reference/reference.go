// Package reference holds the view of an image reference that resolvers and
// remotes work with: a Locator (host and path) and an Object (tag, digest,
// or both), as containerd's reference.Spec.
//
// It is deliberately loose: the object may be any tag or a partial digest
// for the remote to resolve. Package reference/docker parses and normalises
// references by docker's stricter grammar ("busybox" → docker.io/library/busybox).
package reference

import (
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"strings"

	"github.com/llitfkitfk/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
)

var (
	// ErrInvalid is returned for a reference that is not a valid spec.
	ErrInvalid = fmt.Errorf("invalid reference: %w", errdefs.ErrInvalidArgument)
	// ErrObjectRequired is returned by users of a Spec that need an object.
	ErrObjectRequired = fmt.Errorf("object required: %w", errdefs.ErrInvalidArgument)
	// ErrHostnameRequired is returned for a reference with no hostname.
	ErrHostnameRequired = fmt.Errorf("hostname required: %w", errdefs.ErrInvalidArgument)
)

// Spec is a reference split into the two parts every remote understands.
type Spec struct {
	// Locator is the host and path: "docker.io/library/redis". The host
	// may be a real host or only the namespace of related images.
	Locator string

	// Object names the resource at the locator: "<tag>", "<tag>@<digest>"
	// or "@<digest>". The tag is anything without ':' or '@'; the digest
	// part, always after '@', may be a full digest or a shortened one.
	Object string
}

// Parse splits s into a Spec. s has no scheme ("http://…" is invalid) and
// starts with a hostname; a query or fragment is dropped, the path is
// unescaped and cleaned, and a ".." path component is refused, so that the
// locator cannot climb onto another host.
func Parse(s string) (Spec, error) {
	if strings.Contains(s, "://") {
		return Spec{}, fmt.Errorf("%q has a scheme: %w", s, ErrInvalid)
	}
	s, frag, _ := strings.Cut(s, "#") // a fragment is dropped, as by url.Parse
	if _, err := url.PathUnescape(frag); err != nil {
		return Spec{}, fmt.Errorf("fragment %q: %v: %w", frag, err, ErrInvalid)
	}
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return Spec{}, fmt.Errorf("%q has a control character: %w", s, ErrInvalid)
	}
	s, _, _ = strings.Cut(s, "?")
	host, p, _ := strings.Cut(s, "/")
	if host == "" {
		return Spec{}, ErrHostnameRequired
	}
	if err := checkHost(host); err != nil {
		return Spec{}, err
	}
	p, err := url.PathUnescape(p)
	if err != nil {
		return Spec{}, fmt.Errorf("%q: %v: %w", s, err, ErrInvalid)
	}
	// What the escapes decode to must read the same when parsed again.
	if strings.IndexFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f || strings.ContainsRune("%?#", r) }) >= 0 {
		return Spec{}, fmt.Errorf("%q escapes a control character, '%%', '?' or '#': %w", s, ErrInvalid)
	}

	var object string
	if i := strings.IndexAny(p, ":@"); i >= 0 {
		// Keep the '@' to mark a (possibly partial) digest.
		object = strings.TrimPrefix(p[i:], ":")
		p = p[:i]
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return Spec{}, fmt.Errorf("%q has a \"..\" path component: %w", s, ErrInvalid)
		}
	}
	locator := path.Join(host, p)
	if object != "" && !strings.Contains(locator, "/") {
		// "host:tag" would read as a host and port.
		return Spec{}, fmt.Errorf("%q has an object but no path: %w", s, ErrInvalid)
	}
	return Spec{Locator: locator, Object: object}, nil
}

// checkHost accepts what a URL's host may hold: letters, digits, "-._~",
// sub-delimiters, a bracketed IPv6 address, and an optional numeric port.
// It refuses userinfo ("user@host") rather than silently dropping it.
func checkHost(host string) error {
	if host == "." || host == ".." {
		return fmt.Errorf("host %q: %w", host, ErrInvalid)
	}
	name, port := host, ""
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return fmt.Errorf("host %q: missing ']': %w", host, ErrInvalid)
		}
		name, port = host[1:end], host[end+1:]
		if ip, err := netip.ParseAddr(name); err != nil || !ip.Is6() || ip.Zone() != "" || port != "" && port[0] != ':' {
			return fmt.Errorf("host %q: invalid IPv6 address: %w", host, ErrInvalid)
		}
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 {
		name, port = host[:i], host[i:]
	}
	if strings.Trim(strings.TrimPrefix(port, ":"), "0123456789") != "" {
		return fmt.Errorf("host %q: invalid port: %w", host, ErrInvalid)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("-._~!$&'()*+,;=:", c) >= 0
		if !ok {
			return fmt.Errorf("host %q: invalid character %q: %w", host, c, ErrInvalid)
		}
	}
	return nil
}

// Hostname is the host part of the locator, with its port.
func (r Spec) Hostname() string {
	host, _, _ := strings.Cut(r.Locator, "/")
	return host
}

// Digest is the part of the object after '@': a digest, possibly partial or
// invalid, that a remote may resolve. It is "" when there is no '@'.
func (r Spec) Digest() digest.Digest {
	_, d, ok := strings.Cut(r.Object, "@")
	if !ok {
		return ""
	}
	return digest.Digest(d)
}

// String is the normalised reference: locator, then ":" tag and/or "@" digest.
func (r Spec) String() string {
	switch {
	case r.Object == "":
		return r.Locator
	case r.Object[0] == '@':
		return r.Locator + r.Object
	default:
		return r.Locator + ":" + r.Object
	}
}

// SplitObject splits an object into its tag and its digest; either may be
// empty. The '@' is not part of the digest.
func SplitObject(obj string) (tag string, d digest.Digest) {
	tag, dgst, _ := strings.Cut(obj, "@")
	return tag, digest.Digest(dgst)
}
