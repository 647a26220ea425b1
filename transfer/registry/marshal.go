package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/protobuf/types/known/anypb"

	transfertypes "github.com/llitfkitfk/containerd/api/types/transfer"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/streaming"
	tstreaming "github.com/llitfkitfk/containerd/transfer/streaming"
)

// MarshalAny is the client's side of UnmarshalAny: it writes the
// reference and how to reach its registry as a
// containerd.types.transfer.OCIRegistry. With a CredentialHelper, it opens
// an auth stream and answers the daemon's AuthRequests on it for as long
// as ctx lives; the secrets go only to a daemon that asks for them.
func (r *OCIRegistry) MarshalAny(ctx context.Context, sc streaming.StreamCreator) (*anypb.Any, error) {
	res := &transfertypes.RegistryResolver{
		HostDir:       r.hostDir,
		DefaultScheme: r.defaultScheme,
	}
	if len(r.headers) > 0 {
		// The wire has one value per name; several are joined as HTTP
		// allows for a list-valued header.
		res.Headers = make(map[string]string, len(r.headers))
		for k, v := range r.headers {
			res.Headers[k] = strings.Join(v, ", ")
		}
	}
	if r.creds != nil {
		id := tstreaming.GenerateID("creds")
		stream, err := sc.Create(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("open credentials stream: %w", err)
		}
		go answerCredentials(ctx, stream, r.creds)
		res.AuthStream = id
	}
	return streaming.MarshalAny(&transfertypes.OCIRegistry{Reference: r.reference, Resolver: res})
}

// answerCredentials answers each AuthRequest on stream until the daemon
// ends it. Every request gets a response, an empty one when the helper
// fails, since the daemon waits for one before it goes on (anonymously).
func answerCredentials(ctx context.Context, stream streaming.Stream, helper CredentialHelper) {
	defer stream.Close()
	for {
		a, err := stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				log.G(ctx).WithError(err).Debug("credentials stream ended")
			}
			return
		}
		var req transfertypes.AuthRequest
		if err := a.UnmarshalTo(&req); err != nil {
			log.G(ctx).WithError(err).WithField("type", a.GetTypeUrl()).Warn("credentials stream: not an AuthRequest")
			continue
		}
		var resp transfertypes.AuthResponse
		creds, err := helper.GetCredentials(ctx, req.GetReference(), req.GetHost())
		switch {
		case err != nil:
			log.G(ctx).WithError(err).WithField("host", req.GetHost()).Warn("no credentials for registry host")
		case creds.Header != "":
			resp.AuthType, resp.Secret = transfertypes.AuthType_HEADER, creds.Header
		case creds.Username != "":
			resp.AuthType, resp.Username, resp.Secret = transfertypes.AuthType_CREDENTIALS, creds.Username, creds.Secret
		case creds.Secret != "":
			resp.AuthType, resp.Secret = transfertypes.AuthType_REFRESH, creds.Secret
		}
		out, err := streaming.MarshalAny(&resp)
		if err != nil {
			log.G(ctx).WithError(err).Error("credentials stream: marshal response")
			return
		}
		if err := stream.Send(out); err != nil {
			return
		}
	}
}

// StaticCredentials answers with the same username and secret for every
// host of one reference: what `ctr --user` gives.
type StaticCredentials struct {
	Ref      string
	Username string
	Secret   string
}

// GetCredentials returns the credentials for ref; none for another
// reference, so that they are not handed to a host they were not meant
// for.
func (sc StaticCredentials) GetCredentials(_ context.Context, ref, host string) (Credentials, error) {
	if ref != normalize(sc.Ref) && ref != sc.Ref {
		return Credentials{Host: host}, nil
	}
	return Credentials{Host: host, Username: sc.Username, Secret: sc.Secret}, nil
}
