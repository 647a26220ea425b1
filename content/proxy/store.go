// Package proxy is a content.Store over the daemon's Content gRPC service:
// blobs are read with Read streams, written with Write streams that can be
// resumed, and everything else is one call.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/llitfkitfk/containerd/api/convert"
	contentapi "github.com/llitfkitfk/containerd/api/services/content/v1"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
)

type store struct {
	client contentapi.ContentClient
}

// NewContentStore is the daemon's content store behind client. Errors
// come back as errdefs kinds.
func NewContentStore(client contentapi.ContentClient) content.Store {
	return &store{client: client}
}

func (s *store) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	resp, err := s.client.Info(ctx, &contentapi.InfoRequest{Digest: dgst.String()})
	if err != nil {
		return content.Info{}, errdefs.FromGRPC(err)
	}
	return convert.ContentInfoFromProto(resp.Info), nil
}

// Update changes the labels named by fieldpaths ("labels" or
// "labels.<key>"); none replaces all of them.
func (s *store) Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error) {
	resp, err := s.client.Update(ctx, &contentapi.UpdateRequest{
		Info:       convert.ContentInfoToProto(info),
		UpdateMask: &fieldmaskpb.FieldMask{Paths: fieldpaths},
	})
	if err != nil {
		return content.Info{}, errdefs.FromGRPC(err)
	}
	return convert.ContentInfoFromProto(resp.Info), nil
}

// Walk calls fn for each blob matching any of filters, as the daemon
// streams them. An error of fn ends the walk and is returned as is.
func (s *store) Walk(ctx context.Context, fn content.WalkFunc, filters ...string) error {
	// Cancelling the stream when the walk stops early tells the daemon to
	// stop listing.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.client.List(ctx, &contentapi.ListContentRequest{Filters: filters})
	if err != nil {
		return errdefs.FromGRPC(err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return errdefs.FromGRPC(err)
		}
		for _, info := range resp.Info {
			if err := fn(convert.ContentInfoFromProto(info)); err != nil {
				return err
			}
		}
	}
}

func (s *store) Delete(ctx context.Context, dgst digest.Digest) error {
	_, err := s.client.Delete(ctx, &contentapi.DeleteContentRequest{Digest: dgst.String()})
	return errdefs.FromGRPC(err)
}

// ReaderAt reads the blob desc names. Its size is asked of the daemon,
// which also says whether the blob is there; reads use ctx.
func (s *store) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	info, err := s.Info(ctx, desc.Digest)
	if err != nil {
		return nil, err
	}
	return &readerAt{ctx: ctx, client: s.client, digest: desc.Digest, size: info.Size}, nil
}

func (s *store) Status(ctx context.Context, ref string) (content.Status, error) {
	resp, err := s.client.Status(ctx, &contentapi.StatusRequest{Ref: ref})
	if err != nil {
		return content.Status{}, errdefs.FromGRPC(err)
	}
	return statusFromProto(resp.Status), nil
}

func (s *store) ListStatuses(ctx context.Context, filters ...string) ([]content.Status, error) {
	resp, err := s.client.ListStatuses(ctx, &contentapi.ListStatusesRequest{Filters: filters})
	if err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	out := make([]content.Status, len(resp.Statuses))
	for i, st := range resp.Statuses {
		out[i] = statusFromProto(st)
	}
	return out, nil
}

// Abort removes the ingest ref and what it has written.
func (s *store) Abort(ctx context.Context, ref string) error {
	_, err := s.client.Abort(ctx, &contentapi.AbortRequest{Ref: ref})
	return errdefs.FromGRPC(err)
}

// Writer opens the ingest named by WithRef, resuming it if the daemon
// has it (Status says at which offset). The stream it opens holds the
// ref's lock in the daemon until the writer is committed or closed; a
// second writer of the same ref meanwhile fails Unavailable ("ref
// locked"), and waiting and retrying is the caller's choice. An expected
// digest (WithDescriptor) that the store already has fails AlreadyExists.
func (s *store) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wo content.WriterOpts
	for _, opt := range opts {
		if err := opt(&wo); err != nil {
			return nil, err
		}
	}
	if wo.Ref == "" {
		return nil, fmt.Errorf("content writer: ref must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	return openWriter(ctx, s.client, wo.Ref, wo.Desc.Size, wo.Desc.Digest)
}

func statusFromProto(st *contentapi.Status) content.Status {
	return content.Status{
		Ref:       st.GetRef(),
		Offset:    st.GetOffset(),
		Total:     st.GetTotal(),
		Expected:  digest.Digest(st.GetExpected()),
		StartedAt: convert.TimestampFromProto(st.GetStartedAt()),
		UpdatedAt: convert.TimestampFromProto(st.GetUpdatedAt()),
	}
}
