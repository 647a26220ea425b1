package local

import (
	"context"
	"fmt"
	"slices"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/reference"
)

// maxSourceLabel bounds a distribution source label: a layer shared by
// very many repositories stops collecting them rather than fail a pull
// on the store's label size limit.
const maxSourceLabel = 4000

// sourceLabeler records, on each blob, that it came from name's
// repository: the label containerd.io/distribution.source.<host> lists the
// repositories of that registry holding it, which lets a later push to
// another repository there mount the blob instead of uploading it. A name
// that is not a registry reference labels nothing.
//
// The labels are written in the background, off the path from one blob to
// the next (each is a database commit); wait returns once all are written.
type sourceLabeler struct {
	label func(context.Context, ocispec.Descriptor) error
	eg    errgroup.Group
	// fresh is the label of a blob fetched now, set as it is committed
	// (which saves a database commit of its own); nil if none.
	fresh map[string]string
}

func newSourceLabeler(cm content.Manager, name string) *sourceLabeler {
	spec, err := reference.Parse(name)
	if err != nil {
		return &sourceLabeler{}
	}
	host := spec.Hostname()
	repo := strings.TrimPrefix(strings.TrimPrefix(spec.Locator, host), "/")
	key := images.LabelDistributionSource + "." + host
	return &sourceLabeler{fresh: map[string]string{key: repo}, label: func(ctx context.Context, desc ocispec.Descriptor) error {
		info, err := cm.Info(ctx, desc.Digest)
		if err != nil {
			return err
		}
		var repos []string
		if v := info.Labels[key]; v != "" {
			repos = strings.Split(v, ",")
		}
		if slices.Contains(repos, repo) {
			return nil
		}
		repos = append(repos, repo)
		slices.Sort(repos)
		value := strings.Join(repos, ",")
		if len(key)+len(value) > maxSourceLabel {
			log.G(ctx).WithField("digest", desc.Digest).Debug("transfer: distribution source label full")
			return nil
		}
		_, err = cm.Update(ctx, content.Info{Digest: desc.Digest, Labels: map[string]string{key: value}}, "labels."+key)
		return err
	}}
}

// commitOpts are the options a blob fetched now is committed with: its
// label, which handler then finds there and leaves be.
func (l *sourceLabeler) commitOpts() []content.Opt {
	if len(l.fresh) == 0 {
		return nil
	}
	for k, v := range l.fresh {
		if len(k)+len(v) > maxSourceLabel {
			return nil
		}
	}
	return []content.Opt{content.WithLabels(l.fresh)}
}

// handler labels each blob it is given, which must be in the store.
func (l *sourceLabeler) handler(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	if l.label != nil {
		// The walk cancels its context when it ends; the label is
		// still wanted then (wait is what the pull waits on).
		ctx := context.WithoutCancel(ctx)
		l.eg.Go(func() error {
			if err := l.label(ctx, desc); err != nil {
				return fmt.Errorf("label %s with its source: %w", desc.Digest, err)
			}
			return nil
		})
	}
	return nil, nil
}

// wait waits for the labels and returns the first error.
func (l *sourceLabeler) wait() error { return l.eg.Wait() }
