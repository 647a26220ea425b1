// Package identifiers checks the names clients give to namespaces,
// containers, leases and the like, so that a name is always safe to use as a
// path component and as a bolt key.
package identifiers

import (
	"fmt"
	"regexp"

	"github.com/llitfkitfk/containerd/errdefs"
)

// maxLength bounds names; it matches what containerd accepts, so a name valid
// there is valid here.
const maxLength = 76

// Alphanumeric runs separated by single '.', '_' or '-'.
var identifierRe = regexp.MustCompile(`^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$`)

// Validate returns an InvalidArgument error naming what is wrong with s.
func Validate(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("identifier must not be empty: %w", errdefs.ErrInvalidArgument)
	case len(s) > maxLength:
		return fmt.Errorf("identifier %q greater than maximum length (%d characters): %w", s, maxLength, errdefs.ErrInvalidArgument)
	case !identifierRe.MatchString(s):
		return fmt.Errorf("identifier %q must match %v: %w", s, identifierRe, errdefs.ErrInvalidArgument)
	}
	return nil
}
