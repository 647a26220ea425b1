package server

import (
	"context"
	"errors"
	"sync"
	"time"

	eventsapi "github.com/llitfkitfk/containerd/api/events"
	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/log"
	rt "github.com/llitfkitfk/containerd/runtime"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// eventTimeout bounds the handling of one task event (a task delete on a
// shim that hangs must not stop the monitor).
const eventTimeout = time.Minute

// startEventMonitor follows task exits (containers' and sandboxes') and
// OOMs from the shims, for as long as ctx lives.
func (s *Service) startEventMonitor(ctx context.Context) error {
	go s.monitorEvents(ctx)
	return nil
}

// monitorEvents subscribes to the CRI namespace's task exits and OOMs,
// and subscribes again when the subscription breaks (the exchange drops a
// subscriber that falls behind). After each subscription it checks the
// running tasks, so that an exit published while it was not subscribed is
// not lost.
func (s *Service) monitorEvents(ctx context.Context) {
	ctx = withNamespace(ctx)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		sctx, cancel := context.WithCancel(ctx)
		ch, errs := s.deps.Events.Subscribe(sctx,
			`topic=="`+rt.TaskExitEventTopic+`",namespace=="`+config.Namespace+`"`,
			`topic=="`+rt.TaskOOMEventTopic+`",namespace=="`+config.Namespace+`"`,
			// Images other clients add to or remove from the namespace
			// (`ctr -n k8s.io images import`, say) are the kubelet's too.
			`topic~="^/images/",namespace=="`+config.Namespace+`"`)
		s.reconcileExits(ctx)
		err := s.handleEvents(ctx, ch, errs)
		cancel()
		if ctx.Err() != nil {
			return
		}
		log.G(ctx).WithError(err).Warn("CRI: task event subscription ended; subscribing again")
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

func (s *Service) handleEvents(ctx context.Context, ch <-chan *events.Envelope, errs <-chan error) error {
	for {
		select {
		case env, ok := <-ch:
			if !ok {
				return errors.New("event channel closed")
			}
			s.handleEvent(ctx, env)
		case err := <-errs:
			if err == nil {
				err = errors.New("subscription closed")
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Service) handleEvent(ctx context.Context, env *events.Envelope) {
	if env.Namespace != config.Namespace {
		return
	}
	ev, err := events.UnmarshalEvent(env.Event)
	if err != nil {
		log.G(ctx).WithError(err).WithField("topic", env.Topic).Warn("CRI: undecodable task event")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, eventTimeout)
	defer cancel()
	switch e := ev.(type) {
	case *eventsapi.TaskExit:
		// An exec'd process's exit has its own id; only init exits end
		// containers and sandboxes.
		if e.GetId() != e.GetContainerId() {
			return
		}
		exitedAt := time.Now()
		if e.GetExitedAt() != nil {
			exitedAt = e.GetExitedAt().AsTime()
		}
		if c, err := s.containers.Get(e.GetContainerId()); err == nil && c.Metadata.ID == e.GetContainerId() {
			s.handleContainerExit(ctx, c, e.GetExitStatus(), exitedAt, "")
			return
		}
		if sb, err := s.sandboxes.Get(e.GetContainerId()); err == nil && sb.Metadata.ID == e.GetContainerId() {
			s.handleSandboxExit(ctx, sb.Metadata.ID, e.GetExitStatus(), exitedAt.UnixNano())
		}
	case *eventsapi.ImageCreate:
		s.imageChanged(ctx, e.GetName())
	case *eventsapi.ImageUpdate:
		s.imageChanged(ctx, e.GetName())
	case *eventsapi.ImageDelete:
		s.imageChanged(ctx, e.GetName())
	case *eventsapi.TaskOOM:
		c, err := s.containers.Get(e.GetContainerId())
		if err != nil || c.Metadata.ID != e.GetContainerId() {
			return
		}
		// The exit that follows keeps this reason.
		err = c.UpdateStatus(func(st store.ContainerStatus) (store.ContainerStatus, error) {
			if st.FinishedAt == 0 {
				st.Reason = reasonOOMKilled
			}
			return st, nil
		})
		if err != nil {
			log.G(ctx).WithError(err).WithField("id", c.Metadata.ID).Warn("CRI: recording an OOM")
		}
	}
}

// imageChanged brings the image service's view of name up to date.
func (s *Service) imageChanged(ctx context.Context, name string) {
	if err := s.deps.Images.Update(ctx, name); err != nil {
		log.G(ctx).WithError(err).WithField("image", name).Warn("CRI: following an image event")
	}
}

// handleContainerExit records the exit of a container's init process:
// its task is deleted, its status says how it ended, Stopped is closed and
// the event streams are told. reason, if set, replaces the one the exit
// code gives (an OOM seen before stays). Calling it again for the same
// container does nothing more.
func (s *Service) handleContainerExit(ctx context.Context, c *store.Container, exitStatus uint32, exitedAt time.Time, reason string) {
	// The event monitor and a stop's own wait may both get here: one
	// deletes the task and records the exit, the other finds it done. A
	// second task delete under way would fail a remove that follows.
	unlock := lockExit(c)
	defer unlock()
	if c.Status().FinishedAt != 0 {
		c.MarkStopped()
		return
	}
	id := c.Metadata.ID
	if _, err := s.deps.Tasks.Delete(ctx, id); err != nil && !errdefs.IsNotFound(err) {
		// The status is recorded anyway: the process is gone, and remove
		// deletes the task again.
		log.G(ctx).WithError(err).WithField("id", id).Warn("CRI: deleting the task of an exited container")
	}
	err := c.UpdateStatus(func(st store.ContainerStatus) (store.ContainerStatus, error) {
		st.Pid = 0
		st.FinishedAt = exitedAt.UnixNano()
		if st.FinishedAt <= 0 {
			st.FinishedAt = time.Now().UnixNano()
		}
		st.ExitCode = int32(exitStatus)
		switch {
		case st.Reason == reasonOOMKilled:
		case reason != "":
			st.Reason = reason
		case st.Reason == "":
			st.Reason = exitReason(st.ExitCode)
		}
		st.Starting = false
		return st, nil
	})
	if err != nil {
		log.G(ctx).WithError(err).WithField("id", id).Error("CRI: recording a container's exit")
	}
	c.MarkStopped()
	s.nriContainerExited(ctx, c) // nri-hooks
	s.emitContainerEvent(ctx, c, runtime.ContainerEventType_CONTAINER_STOPPED_EVENT)
}

// exitLocks serialise the handling of each container's exit, by container
// (a store.Container is one container's life in one service).
var exitLocks sync.Map // *store.Container -> *sync.Mutex

func lockExit(c *store.Container) (unlock func()) {
	v, _ := exitLocks.LoadOrStore(c, &sync.Mutex{})
	mu := v.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// forgetExitLock drops a removed container's lock.
func forgetExitLock(c *store.Container) { exitLocks.Delete(c) }

// reconcileExits finds the containers and sandboxes that the store
// believes running but whose task has exited or is gone, and handles their
// exits.
func (s *Service) reconcileExits(ctx context.Context) {
	for _, c := range s.containers.List() {
		if c.Status().State() != runtime.ContainerState_CONTAINER_RUNNING {
			continue
		}
		exited, gone, status, at := s.taskExited(ctx, c.Metadata.ID)
		if exited {
			reason := ""
			if gone {
				reason = reasonUnknown
			}
			s.handleContainerExit(ctx, c, status, at, reason)
		}
	}
	for _, sb := range s.sandboxes.List() {
		if sb.Status().State != store.SandboxReady {
			continue
		}
		if exited, _, status, at := s.taskExited(ctx, sb.Metadata.ID); exited {
			s.handleSandboxExit(ctx, sb.Metadata.ID, status, at.UnixNano())
		}
	}
}

// taskExited reports whether the task of id has stopped, or is gone (an
// exit with an unknown status), and how.
func (s *Service) taskExited(ctx context.Context, id string) (exited, gone bool, status uint32, at time.Time) {
	st, err := s.deps.Tasks.State(ctx, id, "")
	switch {
	case errdefs.IsNotFound(err):
		return true, true, exitCodeUnknown, time.Now()
	case err != nil:
		log.G(ctx).WithError(err).WithField("id", id).Warn("CRI: task state")
		return false, false, 0, time.Time{}
	case st.Status == rt.StoppedStatus:
		return true, false, st.ExitStatus, st.ExitedAt
	}
	return false, false, 0, time.Time{}
}
