package content

import (
	"context"
	"fmt"
	"io"
	"sync"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/llitfkitfk/containerd/api/convert"
	api "github.com/llitfkitfk/containerd/api/services/content/v1"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/services"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type:     plugin.GRPCPlugin,
		ID:       "content",
		Requires: []plugin.Type{plugin.ServicePlugin},
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			l, err := ic.GetByID(plugin.ServicePlugin, services.ContentService)
			if err != nil {
				return nil, err
			}
			return newService(l.(content.Store)), nil
		},
	})
}

// listBatch is how many blobs one List message carries, as containerd.
const listBatch = 100

// A Read stream whose client stops reading holds three of its chunks in
// the daemon: the message gRPC has queued, the next one, encoded and
// waiting for the queue to drain, and the buffer it was read into. With
// containerd's 1 MiB chunks, a thousand clients that ask and never read
// hold 3 GiB. Small chunks bound that to a hundred MiB, but read at half
// the speed of 1 MiB ones, whose messages keep the connection's writer
// busy while the next chunk is read. So large chunks are a budget: a few
// streams at a time use them, and the rest, however many clients stall,
// use small ones.
//
// gRPC encodes a message into a buffer from its pools, whose sizes are
// powers of two; a chunk is a power of two less the most its message adds
// (an offset and a length, 15 bytes), so that its message takes a buffer
// of the chunk's size and not the next size up: 1 MiB for a 64 KiB chunk.
const (
	messageOverhead = 16
	smallReadChunk  = 32<<10 - messageOverhead
	largeReadChunk  = 1<<20 - messageOverhead
	largeReaders    = 16
)

// largeReads holds a token for each Read stream that uses large chunks.
var largeReads = make(chan struct{}, largeReaders)

// The chunk buffers. A buffer is reused as soon as Send returns: gRPC has
// encoded the message by then, and the daemon installs no stats handler
// that keeps messages.
var (
	smallReadBufs = sync.Pool{New: func() any { b := make([]byte, smallReadChunk); return &b }}
	largeReadBufs = sync.Pool{New: func() any { b := make([]byte, largeReadChunk); return &b }}
)

// readBuffer returns a chunk buffer for reading size bytes: a large one if
// the read is large and the budget has room, and the function that gives
// it back.
func readBuffer(size int64) ([]byte, func()) {
	if size > smallReadChunk {
		select {
		case largeReads <- struct{}{}:
			bp := largeReadBufs.Get().(*[]byte)
			return *bp, func() {
				largeReadBufs.Put(bp)
				<-largeReads
			}
		default:
		}
	}
	bp := smallReadBufs.Get().(*[]byte)
	return *bp, func() { smallReadBufs.Put(bp) }
}

// service serves the Content API over the local service.
type service struct {
	api.UnimplementedContentServer
	store content.Store
	// active are the ingests of the open Write streams.
	active activeIngests
}

func newService(store content.Store) *service {
	return &service{store: store}
}

func (s *service) Register(server *grpc.Server) error {
	api.RegisterContentServer(server, s)
	return nil
}

func (s *service) Info(ctx context.Context, req *api.InfoRequest) (*api.InfoResponse, error) {
	dgst, err := parseDigest(req.Digest)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	info, err := s.store.Info(ctx, dgst)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.InfoResponse{Info: convert.ContentInfoToProto(info)}, nil
}

// Update changes a blob's labels; the field mask is passed to the store,
// which treats no paths as "replace all labels".
func (s *service) Update(ctx context.Context, req *api.UpdateRequest) (*api.UpdateResponse, error) {
	if req.Info == nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("info is required: %w", errdefs.ErrInvalidArgument))
	}
	dgst, err := parseDigest(req.Info.Digest)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	info := convert.ContentInfoFromProto(req.Info)
	info.Digest = dgst
	updated, err := s.store.Update(ctx, info, req.GetUpdateMask().GetPaths()...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &api.UpdateResponse{Info: convert.ContentInfoToProto(updated)}, nil
}

// List streams the matching blobs, listBatch to a message.
func (s *service) List(req *api.ListContentRequest, stream api.Content_ListServer) error {
	batch := make([]*api.Info, 0, listBatch)
	send := func() error {
		err := stream.Send(&api.ListContentResponse{Info: batch})
		batch = batch[:0]
		return err
	}
	err := s.store.Walk(stream.Context(), func(info content.Info) error {
		batch = append(batch, convert.ContentInfoToProto(info))
		if len(batch) == listBatch {
			return send()
		}
		return nil
	}, req.Filters...)
	if err == nil && len(batch) > 0 {
		err = send()
	}
	return errdefs.ToGRPC(err)
}

// Delete removes a blob from the caller's namespace.
func (s *service) Delete(ctx context.Context, req *api.DeleteContentRequest) (*emptypb.Empty, error) {
	dgst, err := parseDigest(req.Digest)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	if err := s.store.Delete(ctx, dgst); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

// Read streams [offset, offset+size) of a blob in chunks of at most
// 1 MiB (see readBuffer); size <= 0, or one reaching past the end, reads to the
// end. As in containerd, each message's offset counts from the requested
// offset, not from the start of the blob.
func (s *service) Read(req *api.ReadContentRequest, stream api.Content_ReadServer) error {
	return errdefs.ToGRPC(s.read(req, stream))
}

func (s *service) read(req *api.ReadContentRequest, stream api.Content_ReadServer) error {
	dgst, err := parseDigest(req.Digest)
	if err != nil {
		return err
	}
	ra, err := s.store.ReaderAt(stream.Context(), ocispec.Descriptor{Digest: dgst})
	if err != nil {
		return err
	}
	defer ra.Close()

	blobSize := ra.Size()
	offset := max(req.Offset, 0)
	if offset > blobSize {
		return fmt.Errorf("read of %s at offset %d is past its size %d: %w", dgst, offset, blobSize, errdefs.ErrInvalidArgument)
	}
	remaining := req.Size
	if remaining <= 0 || remaining > blobSize-offset {
		remaining = blobSize - offset
	}

	buf, release := readBuffer(remaining)
	defer release()
	var resp api.ReadContentResponse
	for sent := int64(0); sent < remaining; {
		p := buf[:min(int64(len(buf)), remaining-sent)]
		n, err := ra.ReadAt(p, offset+sent)
		if n < len(p) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read %s at %d: %w", dgst, offset+sent, err)
		}
		resp.Offset, resp.Data = sent, p
		if err := stream.Send(&resp); err != nil {
			return err
		}
		sent += int64(n)
	}
	return nil
}

// Status reports an ingest, with every write its stream has acknowledged.
func (s *service) Status(ctx context.Context, req *api.StatusRequest) (*api.StatusResponse, error) {
	s.active.flush(ctx, req.Ref)
	st, err := s.store.Status(ctx, req.Ref)
	if err != nil {
		return nil, errdefs.ToGRPCf(err, "could not get status for ref %q", req.Ref)
	}
	return &api.StatusResponse{Status: convert.ContentStatusToProto(st)}, nil
}

func (s *service) ListStatuses(ctx context.Context, req *api.ListStatusesRequest) (*api.ListStatusesResponse, error) {
	s.active.flush(ctx, "")
	statuses, err := s.store.ListStatuses(ctx, req.Filters...)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	resp := &api.ListStatusesResponse{Statuses: make([]*api.Status, 0, len(statuses))}
	for _, st := range statuses {
		resp.Statuses = append(resp.Statuses, convert.ContentStatusToProto(st))
	}
	return resp, nil
}

func (s *service) Abort(ctx context.Context, req *api.AbortRequest) (*emptypb.Empty, error) {
	if err := s.store.Abort(ctx, req.Ref); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

// parseDigest checks a digest from a request; a malformed one is
// InvalidArgument.
func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", fmt.Errorf("digest %q: %v: %w", s, err, errdefs.ErrInvalidArgument)
	}
	return d, nil
}
