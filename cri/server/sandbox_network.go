package server

import (
	"context"
	"fmt"
	"path/filepath"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/cni"
	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/cri/netns"
	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
)

// network is the pods' networking: CNI in their network namespaces.
type network interface {
	// Status is nil when the network is ready (a CNI config is loaded),
	// else why not, for the NetworkReady condition.
	Status() error
}

// podNetwork is the network that sets pods up: the CNI manager. It is an
// interface apart so that fakes of network need only Status.
type podNetwork interface {
	network
	// Setup attaches the namespace at nsPath to the pod's networks.
	Setup(ctx context.Context, id, nsPath string, pod *runtime.PodSandboxConfig, handler string) (*cni.Result, error)
	// Remove detaches it ("" nsPath: the namespace is gone).
	Remove(ctx context.Context, id, nsPath string, pod *runtime.PodSandboxConfig, handler string) error
}

func newNetwork(cfg *config.Config) (network, error) { return cni.New(cfg) }

// podNet returns the network as a podNetwork.
func (s *Service) podNet() (podNetwork, error) {
	pn, ok := s.network.(podNetwork)
	if !ok {
		return nil, fmt.Errorf("the network (%T) cannot set pods up: %w", s.network, errdefs.ErrFailedPrecondition)
	}
	return pn, nil
}

// netNSDir is where pods' network namespaces are mounted.
func (s *Service) netNSDir() string {
	if s.config.NetNSMountsUnderStateDir {
		return filepath.Join(s.config.StateDir, "netns")
	}
	return netns.DefaultDir
}

// hostNetwork tells whether the pod shares the node's network namespace.
func hostNetwork(cfg *runtime.PodSandboxConfig) bool {
	return cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtime.NamespaceMode_NODE
}

// hostIPC tells whether the pod shares the node's IPC namespace.
func hostIPC(cfg *runtime.PodSandboxConfig) bool {
	return cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetIpc() == runtime.NamespaceMode_NODE
}

// sandboxNetNSPath returns the network namespace path of a sandbox ("" for
// host network): PortForward and container specs use it.
func (s *Service) sandboxNetNSPath(sb *store.Sandbox) string { return sb.Metadata.NetNSPath }

// teardownNetwork detaches a pod from its networks and removes its
// namespace, as StopPodSandbox does in containerd 2.x: a stopped pod holds
// no address. Doing it twice does no harm (CNI DEL is idempotent).
func (s *Service) teardownNetwork(ctx context.Context, md *store.SandboxMetadata) error {
	if md.NetNSPath == "" {
		return nil
	}
	ns := netns.Load(md.NetNSPath)
	path := md.NetNSPath
	closed, err := ns.Closed()
	if err != nil {
		return err
	}
	if closed {
		// The CNI spec's way of saying the namespace is gone.
		path = ""
	}
	pn, err := s.podNet()
	if err != nil {
		return err
	}
	if err := pn.Remove(ctx, md.ID, path, md.Config, md.RuntimeHandler); err != nil {
		// A pod whose setup never completed has nothing to tear down,
		// and its network config may be gone since.
		if md.CNIResult != nil {
			return err
		}
	}
	return ns.Remove()
}
