package server

import (
	"context"
	"fmt"
	"time"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
	ctrdruntime "github.com/llitfkitfk/containerd/runtime"
)

// taskStateTimeout bounds asking a shim about a task on start-up, so that
// one hung shim does not hold the daemon back.
const taskStateTimeout = 5 * time.Second

// recoverSandboxes rebuilds the sandbox store from the sandbox
// containers' records and tasks, after a restart or a crash: the pods'
// shims and pause processes outlived the daemon. A sandbox that cannot be
// read is logged and left out, so that one bad record does not keep the
// daemon down.
func (s *Service) recoverSandboxes(ctx context.Context) error {
	recs, err := s.deps.Containers.List(ctx)
	if err != nil {
		return fmt.Errorf("list sandbox containers: %w", err)
	}
	for _, rec := range recs {
		if rec.Labels[store.KindLabel] != store.KindSandbox {
			continue
		}
		sb, err := s.recoverSandbox(ctx, rec)
		if err != nil {
			log.G(ctx).WithError(err).WithField("sandbox", rec.ID).Error("recover sandbox")
			continue
		}
		if err := s.sandboxes.Add(sb); err != nil {
			log.G(ctx).WithError(err).WithField("sandbox", rec.ID).Error("recover sandbox")
		}
	}
	return nil
}

func (s *Service) recoverSandbox(ctx context.Context, rec containers.Container) (*store.Sandbox, error) {
	ext, ok := rec.Extensions[store.SandboxMetadataExtension]
	if !ok {
		return nil, fmt.Errorf("no %s extension", store.SandboxMetadataExtension)
	}
	if ext.GetTypeUrl() != SandboxMetadataTypeURL {
		return nil, fmt.Errorf("extension %s is a %q, not this daemon's %q", store.SandboxMetadataExtension, ext.GetTypeUrl(), SandboxMetadataTypeURL)
	}
	md, err := store.UnmarshalSandboxMetadata(ext.GetValue())
	if err != nil {
		return nil, err
	}
	if md.ID != rec.ID {
		return nil, fmt.Errorf("metadata is sandbox %q's", md.ID)
	}
	st := store.SandboxStatus{State: store.SandboxNotReady, CreatedAt: rec.CreatedAt}

	tctx, cancel := context.WithTimeout(ctx, taskStateTimeout)
	defer cancel()
	task, err := s.deps.Tasks.Get(tctx, md.ID)
	switch {
	case errdefs.IsNotFound(err):
		// The pause container is gone with its shim: stopped.
	case err != nil:
		st.State = store.SandboxUnknown
	default:
		ps, err := task.State(tctx)
		switch {
		case err != nil:
			log.G(ctx).WithError(err).WithField("sandbox", md.ID).Warn("pause task state")
			st.State = store.SandboxUnknown
		case ps.Status == ctrdruntime.RunningStatus || ps.Status == ctrdruntime.PausedStatus:
			st.State, st.Pid = store.SandboxReady, ps.Pid
		default:
			// Exited while the daemon was down, or created and never
			// started (the daemon died in RunPodSandbox): no pod runs.
			if ps.Status == ctrdruntime.StoppedStatus {
				st.ExitStatus, st.ExitedAt = ps.ExitStatus, ps.ExitedAt
			} else if err := task.Kill(tctx, 9, false); err != nil && !errdefs.IsNotFound(err) {
				log.G(ctx).WithError(err).WithField("sandbox", md.ID).Warn("kill the unstarted pause task")
			}
			if err := s.deletePauseTask(tctx, md.ID); err != nil {
				log.G(ctx).WithError(err).WithField("sandbox", md.ID).Warn("delete the dead pause task")
			}
		}
	}
	sb := store.NewSandbox(md, st)
	if st.State == store.SandboxNotReady {
		sb.MarkStopped()
	}
	return sb, nil
}
