// Package server is the CRI runtime service: runtime.v1.RuntimeService,
// pod sandboxes and their containers, over the daemon's own local
// services in process (containers, tasks, snapshots) — no gRPC hop and no
// second copy of their logic.
//
// Who does what, by file:
//   - service.go: the service, its dependencies and its start-up order.
//   - sandbox_*.go: RunPodSandbox and the rest of a sandbox's life, its
//     network (netns, CNI), recovery after a restart, pod stats.
//   - container_*.go: containers, exec, attach, port-forward, logs,
//     container stats, the task exit monitor, GetContainerEvents,
//     Version/Status/RuntimeConfig, recovery after a restart.
package server

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/cri/images"
	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/cri/streaming"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/nri"
	"github.com/llitfkitfk/containerd/services/tasks"
	"github.com/llitfkitfk/containerd/snapshots"
)

// Deps are the daemon's local services the runtime service drives.
type Deps struct {
	// Containers is the containers service (it publishes
	// /containers/* events).
	Containers containers.Store
	// Tasks is the tasks service: tasks through the shims.
	Tasks *tasks.Local
	// Snapshotters are the snapshots service's (publishing /snapshot/*).
	Snapshotters map[string]snapshots.Snapshotter
	Content      content.Store
	Leases       leases.Manager
	// Events delivers the shims' task events (/tasks/exit, /tasks/oom).
	Events events.Subscriber
	// Images is the CRI image service.
	Images *images.Service
	// Address is the daemon's gRPC address (for the runtime's info).
	Address string
	// NRI relays pod and container events to NRI plugins; nil: none
	// (see nri.go).
	NRI *nri.NRI
}

// Service is the CRI runtime service.
type Service struct {
	runtime.UnimplementedRuntimeServiceServer

	config *config.Config
	deps   Deps

	sandboxes  *store.Store[*store.Sandbox]
	containers *store.Store[*store.Container]

	// stream serves Exec, Attach and PortForward URLs.
	stream streaming.Server

	// network sets pods' networks up and down (sandbox_network.go).
	network network

	// events fans container and sandbox lifecycle events out to
	// GetContainerEvents streams (container_events.go).
	events *eventBroadcaster
}

// New returns the runtime service; Start recovers state and starts its
// servers.
func New(cfg *config.Config, deps Deps) (*Service, error) {
	s := &Service{
		config:     cfg,
		deps:       deps,
		sandboxes:  store.New(store.SandboxKey),
		containers: store.New(store.ContainerKey),
		events:     newEventBroadcaster(),
	}
	net, err := newNetwork(cfg)
	if err != nil {
		return nil, err
	}
	s.network = net
	if s.stream, err = streaming.NewServer(cfg, streamRuntime{s}); err != nil {
		return nil, fmt.Errorf("streaming server: %w", err)
	}
	return s, nil
}

// Start brings the service up to date with what exists and starts
// watching: images, then sandboxes, then their containers are recovered;
// then task exits are followed and the streaming server serves. It
// returns once the service can answer.
func (s *Service) Start(ctx context.Context) error {
	ctx = namespaces.WithNamespace(ctx, config.Namespace)
	if err := s.deps.Images.Load(ctx); err != nil {
		return fmt.Errorf("loading images: %w", err)
	}
	if err := s.recoverSandboxes(ctx); err != nil {
		return fmt.Errorf("recovering sandboxes: %w", err)
	}
	if err := s.recoverContainers(ctx); err != nil {
		return fmt.Errorf("recovering containers: %w", err)
	}
	if err := s.startEventMonitor(ctx); err != nil {
		return err
	}
	if s.stream == nil {
		return nil
	}
	go func() {
		if err := s.stream.Start(true); err != nil {
			log.G(ctx).WithError(err).Error("CRI streaming server stopped")
		}
	}()
	return nil
}

// Close stops the streaming server.
func (s *Service) Close() error {
	if s.stream == nil {
		return nil
	}
	return s.stream.Stop()
}

// withNamespace puts a CRI call's context in the CRI namespace.
func withNamespace(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, config.Namespace)
}
