package metadata

import (
	"fmt"

	"github.com/llitfkitfk/containerd/errdefs"
)

// maxLabelSize bounds a label's key and value together, as containerd does,
// so that labels accepted here are accepted there.
const maxLabelSize = 4096

// validateLabel returns an InvalidArgument error if the label cannot be
// stored.
func validateLabel(key, value string) error {
	if key == "" {
		// bolt cannot store an empty key.
		return fmt.Errorf("label key must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	if n := len(key) + len(value); n > maxLabelSize {
		const shown = 64 // keep the error short when the key is the large part
		if len(key) > shown {
			key = key[:shown]
		}
		return fmt.Errorf("label %q: key and value are %d bytes together, more than the %d allowed: %w",
			key, n, maxLabelSize, errdefs.ErrInvalidArgument)
	}
	return nil
}
