// Package walking is the diff.Comparer that makes a layer by walking the
// lower and upper trees side by side, and the differ plugin that offers it
// together with the file system Applier.
package walking

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/archive"
	"github.com/llitfkitfk/containerd/archive/compression"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/diff"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/mount"
)

type walkingDiff struct {
	store content.Store
}

// NewWalkingDiff returns a Comparer that writes layers into store. It
// relies on nothing but the mounted trees, so it works for any
// snapshotter.
func NewWalkingDiff(store content.Store) diff.Comparer {
	return &walkingDiff{store: store}
}

// Compare mounts lower and upper read-only, writes the layer between them
// into the content store, compressed as the media type says (gzip by
// default), and returns its descriptor. A compressed layer's blob is
// labelled with its diff ID.
func (s *walkingDiff) Compare(ctx context.Context, lower, upper []mount.Mount, opts ...diff.Opt) (ocispec.Descriptor, error) {
	var config diff.Config
	for _, o := range opts {
		if err := o(&config); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("diff option: %w", err)
		}
	}
	comp := compression.Unknown
	if config.Compressor != nil {
		if config.MediaType == "" {
			return ocispec.Descriptor{}, fmt.Errorf("a custom compressor needs a media type: %w", errdefs.ErrInvalidArgument)
		}
	} else {
		if config.MediaType == "" {
			config.MediaType = ocispec.MediaTypeImageLayerGzip
		}
		var err error
		if comp, err = compression.FromMediaType(config.MediaType); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("diff media type: %w", err)
		}
	}
	var writeOpts []archive.WriteDiffOpt
	if config.SourceDateEpoch != nil {
		writeOpts = append(writeOpts, archive.WithSourceDateEpoch(config.SourceDateEpoch))
	}

	var desc ocispec.Descriptor
	err := withReadonlyMounts(ctx, lower, func(lowerRoot string) error {
		return withReadonlyMounts(ctx, upper, func(upperRoot string) error {
			var err error
			desc, err = s.write(ctx, &config, comp, func(w io.Writer) error {
				return archive.WriteDiff(ctx, w, lowerRoot, upperRoot, writeOpts...)
			})
			return err
		})
	})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return desc, nil
}

// write commits what writeTar writes, compressed, as a blob.
func (s *walkingDiff) write(ctx context.Context, config *diff.Config, comp compression.Compression, writeTar func(io.Writer) error) (_ ocispec.Descriptor, err error) {
	ref := config.Reference
	newRef := ref == ""
	if newRef {
		ref = uniqueRef()
	}
	cw, err := s.store.Writer(ctx, content.WithRef(ref), content.WithDescriptor(ocispec.Descriptor{MediaType: config.MediaType}))
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("open content writer: %w", err)
	}
	committed := false
	defer func() {
		cw.Close()
		if !committed && newRef {
			if aerr := s.store.Abort(ctx, ref); aerr != nil && !errdefs.IsNotFound(aerr) {
				log.G(ctx).WithError(aerr).WithField("ref", ref).Warn("abort diff ingest")
			}
		}
	}()
	if !newRef {
		// A named ingest may hold an earlier attempt.
		if err := cw.Truncate(0); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("truncate ingest %s: %w", ref, err)
		}
	}

	labels := make(map[string]string, len(config.Labels)+1)
	for k, v := range config.Labels {
		labels[k] = v
	}
	if comp == compression.Uncompressed {
		if err := writeTar(cw); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("write diff: %w", err)
		}
	} else {
		var zw io.WriteCloser
		if config.Compressor != nil {
			zw, err = config.Compressor(cw, config.MediaType)
		} else {
			zw, err = compression.CompressStream(cw, comp)
		}
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("open compressor: %w", err)
		}
		// The diff ID is the digest of the tar before compression.
		digester := digest.Canonical.Digester()
		err = writeTar(io.MultiWriter(zw, digester.Hash()))
		if cerr := zw.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close compressor: %w", cerr)
		}
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("write diff: %w", err)
		}
		labels[diff.LabelUncompressed] = digester.Digest().String()
	}

	dgst := cw.Digest()
	if err := cw.Commit(ctx, 0, dgst, content.WithLabels(labels)); err != nil {
		if !errdefs.IsAlreadyExists(err) {
			return ocispec.Descriptor{}, fmt.Errorf("commit diff: %w", err)
		}
	}
	committed = true
	info, err := s.store.Info(ctx, dgst)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("diff blob info: %w", err)
	}
	// A blob that existed already may lack the label.
	if v, ok := labels[diff.LabelUncompressed]; ok && info.Labels[diff.LabelUncompressed] != v {
		info.Labels = map[string]string{diff.LabelUncompressed: v}
		if _, err := s.store.Update(ctx, info, "labels."+diff.LabelUncompressed); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("label diff blob: %w", err)
		}
	}
	return ocispec.Descriptor{MediaType: config.MediaType, Digest: info.Digest, Size: info.Size}, nil
}

// withReadonlyMounts calls fn with mounts mounted read-only on a temporary
// directory. No mounts, as for the lower side of a first layer, is an
// empty directory; it is a temporary mount directory all the same, so
// that it too stays under the daemon's root.
func withReadonlyMounts(ctx context.Context, mounts []mount.Mount, fn func(root string) error) error {
	return mount.WithTempMount(ctx, readonly(mounts), fn)
}

// readonly returns mounts with "ro" added. An overlay's upper directory
// becomes its top lower one: overlayfs refuses a second mount of an upper
// directory in use, as a running container's is.
func readonly(mounts []mount.Mount) []mount.Mount {
	out := make([]mount.Mount, len(mounts))
	for i, m := range mounts {
		var opts []string
		if m.Type == "overlay" {
			var upper, lower string
			for _, o := range m.Options {
				switch {
				case strings.HasPrefix(o, "upperdir="):
					upper = strings.TrimPrefix(o, "upperdir=")
				case strings.HasPrefix(o, "lowerdir="):
					lower = strings.TrimPrefix(o, "lowerdir=")
				case strings.HasPrefix(o, "workdir="):
				default:
					opts = append(opts, o)
				}
			}
			if upper != "" {
				lower = upper + ":" + lower
			}
			opts = append(opts, "lowerdir="+lower)
		} else {
			opts = append(opts, m.Options...)
		}
		m.Options = append(opts, "ro")
		out[i] = m
	}
	return out
}

func uniqueRef() string {
	var b [6]byte
	rand.Read(b[:])
	return fmt.Sprintf("diff-%d-%s", time.Now().UnixNano(), base64.RawURLEncoding.EncodeToString(b[:]))
}
