package v2

import (
	"context"
	"time"

	"github.com/llitfkitfk/containerd/api/convert"
	eventsapi "github.com/llitfkitfk/containerd/api/events"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/runtime"
)

// shimDisconnected runs when a shim's connection ends. Unless the daemon
// ended it, the shim died: nobody else will clean up after it or tell
// clients that its task is gone.
func (m *TaskManager) shimDisconnected(s *shimTask) {
	died := s.disconnected()
	s.logs.Close()
	if died {
		m.cleanupDead(s)
	}
}

// cleanupDead cleans up after the dead shim of a listed task and reports
// the task gone. The task is unlisted at once, its id held meanwhile: a
// create of the same id waits for the cleanup, rather than failing with
// "already exists" for a task that no list shows, and its /tasks/create
// follows this task's /tasks/delete.
func (m *TaskManager) cleanupDead(s *shimTask) {
	ctx := namespaces.WithNamespace(m.ctx, s.Namespace())
	free := m.tasks.leave(s)
	if free == nil {
		return // deleted meanwhile; that delete cleans up
	}
	defer free()
	log.G(ctx).WithField("id", s.ID()).Warn("shim disconnected; cleaning up after it")
	s.reap()
	exit := m.cleanupShim(ctx, s.bundle, s.binary)
	m.publishGone(ctx, s.ID(), exit, s.exited.Load())
}

// cleanupShim runs the shim's delete command for a shim that is gone and
// removes the bundle. The exit is the shim's account of the init process,
// or status 255 now when it has none.
func (m *TaskManager) cleanupShim(ctx context.Context, b *bundle, bin *shimBinary) *runtime.Exit {
	exit, err := bin.delete(ctx)
	if err != nil {
		log.G(ctx).WithError(err).WithField("id", b.id).Warn("clean up after shim")
		exit = &runtime.Exit{Status: 255, Timestamp: time.Now()}
	}
	if err := b.delete(); err != nil {
		log.G(ctx).WithError(err).WithField("id", b.id).Error("remove bundle")
	}
	return exit
}

// publishGone reports a task that went with its shim: its exit, unless the
// shim reported that already, and its deletion, which no client asked for.
func (m *TaskManager) publishGone(ctx context.Context, id string, exit *runtime.Exit, exited bool) {
	at := convert.TimestampToProto(exit.Timestamp)
	if !exited {
		if err := m.events.Publish(ctx, runtime.TaskExitEventTopic, &eventsapi.TaskExit{
			ContainerId: id,
			Id:          id,
			Pid:         exit.Pid,
			ExitStatus:  exit.Status,
			ExitedAt:    at,
		}); err != nil {
			log.G(ctx).WithError(err).WithField("id", id).Error("publish task exit")
		}
	}
	if err := m.events.Publish(ctx, runtime.TaskDeleteEventTopic, &eventsapi.TaskDelete{
		ContainerId: id,
		Pid:         exit.Pid,
		ExitStatus:  exit.Status,
		ExitedAt:    at,
	}); err != nil {
		log.G(ctx).WithError(err).WithField("id", id).Error("publish task delete")
	}
}

// watchExits notes the init-process exits that shims publish, so that a
// shim dying afterwards does not have its task exit twice.
func (m *TaskManager) watchExits(ctx context.Context) {
	for ctx.Err() == nil {
		ch, errs := m.events.Subscribe(ctx, `topic=="`+runtime.TaskExitEventTopic+`"`)
		for env := range ch {
			m.noteExit(env)
		}
		if err := <-errs; err != nil && ctx.Err() == nil {
			log.G(ctx).WithError(err).Warn("watching task exits; subscribing again")
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (m *TaskManager) noteExit(env *events.Envelope) {
	ev, err := events.UnmarshalEvent(env.Event)
	if err != nil {
		return
	}
	e, ok := ev.(*eventsapi.TaskExit)
	if !ok || e.GetId() != e.GetContainerId() {
		return // an exec'd process; the task lives on
	}
	if s, err := m.tasks.get(env.Namespace, e.GetContainerId()); err == nil {
		s.exited.Store(true)
	}
}
