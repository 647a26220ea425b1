package server

// Stubs owned by the sandbox work; replace them in sandbox_*.go files.

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
)

// network is the pods' networking: CNI in their network namespaces.
type network interface {
	// Status is nil when the network is ready (a CNI config is loaded),
	// else why not, for the NetworkReady condition.
	Status() error
}

type noNetwork struct{}

func (noNetwork) Status() error { return errdefs.ErrNotImplemented }

func newNetwork(cfg *config.Config) (network, error) { return noNetwork{}, nil }

// recoverSandboxes rebuilds the sandbox store from the sandbox
// containers' records and tasks.
func (s *Service) recoverSandboxes(ctx context.Context) error { return nil }

// handleSandboxExit is called by the event monitor when a sandbox's pause
// container exits.
func (s *Service) handleSandboxExit(ctx context.Context, id string, exitStatus uint32, exitedAtUnixNano int64) {
}

var _ = runtime.PodSandboxState_SANDBOX_READY

// sandboxNetNSPath returns the network namespace path of a sandbox ("" for
// host network): PortForward and container specs use it.
func (s *Service) sandboxNetNSPath(sb *store.Sandbox) string { return sb.Metadata.NetNSPath }
