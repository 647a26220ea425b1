package exchange

import (
	"fmt"
	"strings"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/identifiers"
	"github.com/llitfkitfk/containerd/namespaces"
)

// validateTopic accepts topics of the form /a/b/c, each component a valid
// identifier, so that topics can be matched and displayed unambiguously.
func validateTopic(topic string) error {
	switch {
	case topic == "":
		return fmt.Errorf("must not be empty: %w", errdefs.ErrInvalidArgument)
	case topic[0] != '/':
		return fmt.Errorf("must start with '/': %w", errdefs.ErrInvalidArgument)
	case len(topic) == 1:
		return fmt.Errorf("must have at least one component: %w", errdefs.ErrInvalidArgument)
	}
	for component := range strings.SplitSeq(topic[1:], "/") {
		if err := identifiers.Validate(component); err != nil {
			return fmt.Errorf("component %q: %w", component, err)
		}
	}
	return nil
}

func validateEnvelope(envelope *events.Envelope) error {
	switch {
	case envelope == nil:
		return fmt.Errorf("envelope must not be nil: %w", errdefs.ErrInvalidArgument)
	case envelope.Event == nil:
		return fmt.Errorf("envelope on %q has no event: %w", envelope.Topic, errdefs.ErrInvalidArgument)
	case envelope.Timestamp.IsZero():
		return fmt.Errorf("envelope on %q has no timestamp: %w", envelope.Topic, errdefs.ErrInvalidArgument)
	}
	if err := namespaces.Validate(envelope.Namespace); err != nil {
		return fmt.Errorf("envelope namespace: %w", err)
	}
	if err := validateTopic(envelope.Topic); err != nil {
		return fmt.Errorf("envelope topic %q: %w", envelope.Topic, err)
	}
	return nil
}
