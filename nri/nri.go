// Package nri is the daemon's Node Resource Interface: the plugin
// io.containerd.nri.v1.nri, which listens on a socket for NRI plugins
// (github.com/containerd/nri) and relays pod and container lifecycle
// events to them, so that they can observe and adjust containers.
//
// The plugin only owns the NRI side: the socket, the connected plugins
// and which events each pod or container is still owed. What a pod or a
// container is comes from the runtime that uses it (the CRI), which
// calls the event methods below and answers the plugins' requests
// through its Domain.
package nri

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"

	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/version"
)

// Domain is the runtime whose pods and containers NRI plugins see: it
// lists them for a newly connected plugin and carries out what plugins
// ask for outside of a lifecycle event.
type Domain interface {
	// ListPodSandboxes and ListContainers are the runtime's current
	// pods and containers, for a plugin's Synchronize.
	ListPodSandboxes() []*api.PodSandbox
	ListContainers() []*api.Container
	// UpdateContainer applies a plugin's change of a container's
	// resources (to its spec and its running task).
	UpdateContainer(ctx context.Context, u *api.ContainerUpdate) error
	// EvictContainer stops a container a plugin wants gone.
	EvictContainer(ctx context.Context, id, reason string) error
}

// runtimeName is the name plugins are told the runtime has: containerd's,
// as the rest of the daemon answers as containerd does.
const runtimeName = "containerd"

// lifecycle is how far a pod or container got as plugins saw it: each
// event is sent once, in order, whichever of the runtime's paths (a CRI
// call, an exit, a removal) gets there first.
type lifecycle int

const (
	gone lifecycle = iota // never seen, or removed
	created
	running
	stopped
)

// NRI relays events to NRI plugins. A nil *NRI, or one that is disabled
// or failed to start, does nothing: every method is then a no-op, so
// that the runtime works without NRI.
type NRI struct {
	cfg Config

	// mu orders events against each other and against the
	// synchronisation of a newly connected plugin: the adaptation runs
	// one plugin call at a time anyway, and the lifecycle map must
	// agree with what the plugins were told.
	mu     sync.Mutex
	adapt  *adaptation.Adaptation
	domain Domain
	state  map[string]lifecycle
}

// New returns an NRI with the configuration; Start opens its socket.
func New(cfg Config) *NRI {
	return &NRI{cfg: cfg, state: map[string]lifecycle{}}
}

// Config is the NRI's configuration.
func (n *NRI) Config() Config { return n.cfg }

// Enabled reports whether events reach plugins.
func (n *NRI) Enabled() bool {
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.adapt != nil
}

// Start starts the pre-installed plugins and listens on the socket for
// others, with d answering their requests. It is called once the runtime
// knows its pods and containers (after its recovery), so that the first
// plugins synchronise with all of them.
func (n *NRI) Start(d Domain) error {
	if n == nil || n.cfg.Disable {
		return nil
	}
	if d == nil {
		return errors.New("NRI: no runtime domain")
	}
	if err := n.cfg.Validate(); err != nil {
		return err
	}
	if t := n.cfg.registrationTimeout(); t > 0 {
		adaptation.SetPluginRegistrationTimeout(t)
	}
	if t := n.cfg.requestTimeout(); t > 0 {
		adaptation.SetPluginRequestTimeout(t)
	}
	n.mu.Lock()
	n.domain = d
	n.mu.Unlock()
	a, err := adaptation.New(runtimeName, version.Version, n.synchronize, n.updateFromPlugin, n.cfg.options()...)
	if err != nil {
		return fmt.Errorf("NRI: %w", err)
	}
	if err := a.Start(); err != nil {
		return fmt.Errorf("NRI: starting on %s: %w", n.cfg.SocketPath, err)
	}
	n.mu.Lock()
	n.adapt = a
	n.mu.Unlock()
	log.L.WithField("socket", n.cfg.SocketPath).Info("NRI: listening for plugins")
	return nil
}

// Stop closes the socket and the plugins' connections.
func (n *NRI) Stop() {
	if n == nil {
		return
	}
	n.mu.Lock()
	a := n.adapt
	n.adapt = nil
	n.mu.Unlock()
	if a != nil {
		a.Stop()
	}
}

// Close stops NRI when the daemon shuts down (the daemon closes plugins
// that are io.Closers).
func (n *NRI) Close() error {
	n.Stop()
	return nil
}

// SyncBlock holds off the synchronisation of newly connecting plugins;
// see BlockPluginSync.
type SyncBlock struct{ b *adaptation.PluginSyncBlock }

// Unblock lets plugin synchronisation go on; on a nil block it does
// nothing.
func (b *SyncBlock) Unblock() {
	if b != nil && b.b != nil {
		b.b.Unblock()
		b.b = nil
	}
}

// BlockPluginSync keeps a newly connecting plugin from synchronising
// until Unblock. The runtime holds it from before an event until the pod
// or container is in (or out of) its store, so that a plugin connecting
// meanwhile either gets the event or finds the result in its
// Synchronize: it never misses a container.
func (n *NRI) BlockPluginSync() *SyncBlock {
	a := n.adaptation()
	if a == nil {
		return nil
	}
	return &SyncBlock{b: a.BlockPluginSync()}
}

func (n *NRI) adaptation() *adaptation.Adaptation {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.adapt
}

// lock takes the event lock and returns the adaptation, or nil (and no
// lock held) when NRI is off.
func (n *NRI) lock() *adaptation.Adaptation {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	if n.adapt == nil {
		n.mu.Unlock()
		return nil
	}
	return n.adapt
}

// RunPodSandbox tells plugins a pod is being started. An error from a
// plugin fails the pod's start: the runtime undoes it and calls
// RemovePodSandbox.
func (n *NRI) RunPodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	a := n.lock()
	if a == nil {
		return nil
	}
	defer n.mu.Unlock()
	n.state[pod.GetId()] = running
	return a.RunPodSandbox(ctx, &api.RunPodSandboxRequest{Pod: pod})
}

// UpdatePodSandbox tells plugins a pod's resources change.
func (n *NRI) UpdatePodSandbox(ctx context.Context, pod *api.PodSandbox, overhead, resources *api.LinuxResources) error {
	a := n.lock()
	if a == nil {
		return nil
	}
	defer n.mu.Unlock()
	_, err := a.UpdatePodSandbox(ctx, &api.UpdatePodSandboxRequest{Pod: pod, OverheadLinuxResources: overhead, LinuxResources: resources})
	return err
}

// PostUpdatePodSandbox tells plugins a pod's resources changed.
func (n *NRI) PostUpdatePodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	a := n.lock()
	if a == nil {
		return nil
	}
	defer n.mu.Unlock()
	return a.PostUpdatePodSandbox(ctx, &api.PostUpdatePodSandboxRequest{Pod: pod})
}

// StopPodSandbox tells plugins a pod stopped, once per pod.
func (n *NRI) StopPodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	a := n.lock()
	if a == nil {
		return nil
	}
	defer n.mu.Unlock()
	if s := n.state[pod.GetId()]; s != created && s != running {
		return nil
	}
	n.state[pod.GetId()] = stopped
	return a.StopPodSandbox(ctx, &api.StopPodSandboxRequest{Pod: pod})
}

// RemovePodSandbox tells plugins a pod is removed, once per pod; a pod
// not yet reported stopped is reported stopped first.
func (n *NRI) RemovePodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	a := n.lock()
	if a == nil {
		return nil
	}
	defer n.mu.Unlock()
	switch n.state[pod.GetId()] {
	case gone:
		return nil
	case created, running:
		if err := a.StopPodSandbox(ctx, &api.StopPodSandboxRequest{Pod: pod}); err != nil {
			log.G(ctx).WithError(err).WithField("pod", pod.GetId()).Warn("NRI: StopPodSandbox before removal")
		}
	}
	delete(n.state, pod.GetId())
	return a.RemovePodSandbox(ctx, &api.RemovePodSandboxRequest{Pod: pod})
}

// CreateContainer asks plugins for their adjustment of a container about
// to be created; the runtime applies it to the container's spec. Updates
// of other containers and evictions the plugins ask for are carried out
// here (failures are logged: the new container does not depend on them).
// An error fails the create; the runtime then calls RemoveContainer.
func (n *NRI) CreateContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) (*api.ContainerAdjustment, error) {
	a := n.lock()
	if a == nil {
		return nil, nil
	}
	defer n.mu.Unlock()
	n.state[ctr.GetId()] = created
	resp, err := a.CreateContainer(ctx, &api.CreateContainerRequest{Pod: pod, Container: ctr})
	if err != nil {
		return nil, err
	}
	n.evict(ctx, resp.GetEvict())
	n.apply(ctx, resp.GetUpdate())
	return resp.GetAdjust(), nil
}

// PostCreateContainer tells plugins a container was created.
func (n *NRI) PostCreateContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	a := n.lock()
	if a == nil {
		return nil
	}
	defer n.mu.Unlock()
	return a.PostCreateContainer(ctx, &api.PostCreateContainerRequest{Pod: pod, Container: ctr})
}

// StartContainer tells plugins a container is being started. An error
// fails the start.
func (n *NRI) StartContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	a := n.lock()
	if a == nil {
		return nil
	}
	defer n.mu.Unlock()
	n.state[ctr.GetId()] = running
	return a.StartContainer(ctx, &api.StartContainerRequest{Pod: pod, Container: ctr})
}

// PostStartContainer tells plugins a container started.
func (n *NRI) PostStartContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	a := n.lock()
	if a == nil {
		return nil
	}
	defer n.mu.Unlock()
	return a.PostStartContainer(ctx, &api.PostStartContainerRequest{Pod: pod, Container: ctr})
}

// UpdateContainer asks plugins about a change of a container's
// resources; it returns the resources to set (nil: as requested). Other
// containers' updates and evictions are carried out here.
func (n *NRI) UpdateContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container, res *api.LinuxResources) (*api.LinuxResources, error) {
	a := n.lock()
	if a == nil {
		return nil, nil
	}
	defer n.mu.Unlock()
	resp, err := a.UpdateContainer(ctx, &api.UpdateContainerRequest{Pod: pod, Container: ctr, LinuxResources: res})
	if err != nil {
		return nil, err
	}
	n.evict(ctx, resp.GetEvict())
	// The adaptation puts the update of the container asked about last.
	updates := resp.GetUpdate()
	if len(updates) == 0 {
		return nil, nil
	}
	last := updates[len(updates)-1]
	if last.GetContainerId() != ctr.GetId() {
		n.apply(ctx, updates)
		return nil, nil
	}
	n.apply(ctx, updates[:len(updates)-1])
	return last.GetLinux().GetResources(), nil
}

// PostUpdateContainer tells plugins a container's resources changed.
func (n *NRI) PostUpdateContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	a := n.lock()
	if a == nil {
		return nil
	}
	defer n.mu.Unlock()
	return a.PostUpdateContainer(ctx, &api.PostUpdateContainerRequest{Pod: pod, Container: ctr})
}

// StopContainer tells plugins a container stopped, once per container,
// whether it was stopped or exited on its own; the updates of other
// containers plugins answer with are carried out.
func (n *NRI) StopContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	a := n.lock()
	if a == nil {
		return nil
	}
	defer n.mu.Unlock()
	return n.stopContainer(ctx, a, pod, ctr)
}

func (n *NRI) stopContainer(ctx context.Context, a *adaptation.Adaptation, pod *api.PodSandbox, ctr *api.Container) error {
	if s := n.state[ctr.GetId()]; s != created && s != running {
		return nil
	}
	n.state[ctr.GetId()] = stopped
	resp, err := a.StopContainer(ctx, &api.StopContainerRequest{Pod: pod, Container: ctr})
	if err != nil {
		return err
	}
	n.apply(ctx, resp.GetUpdate())
	return nil
}

// RemoveContainer tells plugins a container is removed, once per
// container; one not yet reported stopped is reported stopped first.
func (n *NRI) RemoveContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	a := n.lock()
	if a == nil {
		return nil
	}
	defer n.mu.Unlock()
	if n.state[ctr.GetId()] == gone {
		return nil
	}
	if err := n.stopContainer(ctx, a, pod, ctr); err != nil {
		log.G(ctx).WithError(err).WithField("container", ctr.GetId()).Warn("NRI: StopContainer before removal")
	}
	delete(n.state, ctr.GetId())
	return a.RemoveContainer(ctx, &api.RemoveContainerRequest{Pod: pod, Container: ctr})
}

// synchronize is the adaptation's SyncFn, run when a plugin connects:
// the plugin gets the runtime's pods and containers, and the lifecycle
// map learns of those it did not know (recovered after a restart).
// Events wait meanwhile (n.mu), and so do creations and removals
// (BlockPluginSync), so what the plugin is told is what exists.
func (n *NRI) synchronize(ctx context.Context, cb adaptation.SyncCB) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	pods := n.domain.ListPodSandboxes()
	ctrs := n.domain.ListContainers()
	for _, p := range pods {
		if _, ok := n.state[p.GetId()]; !ok {
			n.state[p.GetId()] = running
		}
	}
	for _, c := range ctrs {
		switch c.GetState() {
		case api.ContainerState_CONTAINER_CREATED:
			n.state[c.GetId()] = created
		case api.ContainerState_CONTAINER_RUNNING, api.ContainerState_CONTAINER_PAUSED:
			n.state[c.GetId()] = running
		case api.ContainerState_CONTAINER_STOPPED:
			n.state[c.GetId()] = stopped
		}
	}
	updates, err := cb(ctx, pods, ctrs)
	if err != nil {
		return err
	}
	n.apply(ctx, updates)
	return nil
}

// updateFromPlugin is the adaptation's UpdateFn: a plugin's unsolicited
// UpdateContainers. It returns the updates that failed.
func (n *NRI) updateFromPlugin(ctx context.Context, updates []*api.ContainerUpdate) ([]*api.ContainerUpdate, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	failed := n.apply(ctx, updates)
	if len(failed) > 0 {
		return failed, fmt.Errorf("NRI: %d of %d container updates failed", len(failed), len(updates))
	}
	return nil, nil
}

// apply carries out container updates (n.mu held) and returns those that
// failed; an update marked IgnoreFailure that fails is not returned.
func (n *NRI) apply(ctx context.Context, updates []*api.ContainerUpdate) []*api.ContainerUpdate {
	var failed []*api.ContainerUpdate
	for _, u := range updates {
		if err := n.domain.UpdateContainer(ctx, u); err != nil {
			log.G(ctx).WithError(err).WithField("container", u.GetContainerId()).Warn("NRI: container update")
			if !u.GetIgnoreFailure() {
				failed = append(failed, u)
			}
		}
	}
	return failed
}

// evict stops the containers plugins want gone (n.mu held). The stop
// runs in the background: stopping reports StopContainer to the plugins,
// which needs n.mu.
func (n *NRI) evict(ctx context.Context, evictions []*api.ContainerEviction) {
	for _, e := range evictions {
		id, reason := e.GetContainerId(), e.GetReason()
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := n.domain.EvictContainer(ctx, id, reason); err != nil {
				log.G(ctx).WithError(err).WithField("container", id).Warn("NRI: evicting a container")
			}
		}()
	}
}
