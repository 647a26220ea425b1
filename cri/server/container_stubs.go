package server

// Stubs owned by the container work; replace them in container_*.go files.

import (
	"context"
	"io"
	"time"

	"k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// eventBroadcaster sends container and sandbox events to every
// GetContainerEvents stream.
type eventBroadcaster struct{}

func newEventBroadcaster() *eventBroadcaster { return &eventBroadcaster{} }

// emit sends ev to the streams; it never blocks on a slow one.
func (b *eventBroadcaster) emit(ev *runtime.ContainerEventResponse) {}

// recoverContainers rebuilds the container store after the sandboxes'.
func (s *Service) recoverContainers(ctx context.Context) error { return nil }

// startEventMonitor follows task exits (containers' and sandboxes') and
// OOMs from the shims.
func (s *Service) startEventMonitor(ctx context.Context) error { return nil }

// streamRuntime runs what the streaming server's URLs ask for (Exec,
// Attach, PortForward); a type of its own because its method names clash
// with the CRI's.
type streamRuntime struct{ s *Service }

func (r streamRuntime) Exec(ctx context.Context, containerID string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return errdefs.ErrNotImplemented
}

func (r streamRuntime) Attach(ctx context.Context, containerID string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return errdefs.ErrNotImplemented
}

func (r streamRuntime) PortForward(ctx context.Context, podSandboxID string, port int32, stream io.ReadWriteCloser) error {
	return errdefs.ErrNotImplemented
}

// stopContainer stops a container: its stop signal, then SIGKILL after
// timeout (0: at once); it returns once the container has exited. The
// sandbox work calls it for StopPodSandbox.
func (s *Service) stopContainer(ctx context.Context, c *store.Container, timeout time.Duration) error {
	return errdefs.ErrNotImplemented
}

// removeContainer removes a container (stopping it first if it runs):
// its task, record, snapshot, IO and files. The sandbox work calls it for
// RemovePodSandbox.
func (s *Service) removeContainer(ctx context.Context, c *store.Container) error {
	return errdefs.ErrNotImplemented
}
