package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/containers"
	criio "github.com/llitfkitfk/containerd/cri/io"
	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
	rt "github.com/llitfkitfk/containerd/runtime"
)

// recoverContainers rebuilds the container store after the sandboxes'
// from the CRI containers' records, status files and tasks: a running
// container gets its stdio and log back, one that exited while the daemon
// was down gets its exit, and one whose task vanished is exited with
// reason Unknown. A container that cannot be read is logged and left out,
// so that one bad record does not keep the CRI down.
func (s *Service) recoverContainers(ctx context.Context) error {
	ctx = withNamespace(ctx)
	records, err := s.deps.Containers.List(ctx, fmt.Sprintf(`labels.%q==%q`, store.KindLabel, store.KindContainer))
	if err != nil {
		return fmt.Errorf("listing containers: %w", err)
	}
	for _, rec := range records {
		c, err := s.loadContainer(ctx, rec)
		if err != nil {
			log.G(ctx).WithError(err).WithField("id", rec.ID).Error("CRI: cannot recover container")
			continue
		}
		if err := s.containers.Add(c); err != nil {
			log.G(ctx).WithError(err).WithField("id", rec.ID).Error("CRI: cannot recover container")
		}
	}
	s.recoverImageVolumes(ctx)
	return nil
}

func (s *Service) loadContainer(ctx context.Context, rec containers.Container) (*store.Container, error) {
	id := rec.ID
	ext, ok := rec.Extensions[store.ContainerMetadataExtension]
	if !ok {
		return nil, fmt.Errorf("container %s has no %s extension", id, store.ContainerMetadataExtension)
	}
	md, err := store.UnmarshalContainerMetadata(ext.GetValue())
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", id, err)
	}
	st, err := store.LoadContainerStatus(s.containerStatusFile(id))
	if err != nil {
		// Without its status file (a crash right after the record was
		// made), what the task says is all there is.
		log.G(ctx).WithError(err).WithField("id", id).Warn("CRI: container status file unreadable")
		st = store.ContainerStatus{CreatedAt: rec.CreatedAt.UnixNano()}
	}
	st.Starting, st.Removing, st.Unknown = false, false, false

	var cio *criio.ContainerIO
	ts, err := s.deps.Tasks.State(ctx, id, "")
	switch {
	case errdefs.IsNotFound(err):
		switch st.State() {
		case runtime.ContainerState_CONTAINER_CREATED:
			// Never started: its fifos (under the state directory, gone
			// with a reboot) are made anew.
			ioDir := filepath.Join(s.containerStateDir(id), "io")
			os.RemoveAll(ioDir)
			if cio, err = criio.NewContainerIO(id, ioDir, md.Config.GetTty(), md.Config.GetStdin()); err != nil {
				return nil, fmt.Errorf("container %s: stdio: %w", id, err)
			}
		case runtime.ContainerState_CONTAINER_RUNNING:
			st = exitedUnknown(st)
		}
	case err != nil:
		log.G(ctx).WithError(err).WithField("id", id).Warn("CRI: container task state unreadable")
		st.Unknown = true
	default:
		switch ts.Status {
		case rt.RunningStatus, rt.PausedStatus, rt.PausingStatus:
			cio, err = criio.LoadContainerIO(id, rt.IO{Stdin: ts.Stdin, Stdout: ts.Stdout, Stderr: ts.Stderr, Terminal: ts.Terminal})
			if err != nil {
				log.G(ctx).WithError(err).WithField("id", id).Warn("CRI: cannot reopen a running container's stdio; its output is lost")
				cio = nil
			}
			st.Pid = ts.Pid
			if st.StartedAt == 0 {
				st.StartedAt = time.Now().UnixNano()
			}
		case rt.CreatedStatus:
			// The daemon went down in the middle of StartContainer: the
			// start failed.
			if err := s.killAndDelete(ctx, id); err != nil {
				return nil, err
			}
			st = exitedUnknown(st)
		case rt.StoppedStatus:
			// What it wrote while the daemon was down is lost: the shim's
			// writes found no reader on the fifos, as with containerd.
			if _, err := s.deps.Tasks.Delete(ctx, id); err != nil && !errdefs.IsNotFound(err) {
				log.G(ctx).WithError(err).WithField("id", id).Warn("CRI: deleting the task of a container that exited")
			}
			if st.FinishedAt == 0 {
				st.Pid = 0
				st.FinishedAt = ts.ExitedAt.UnixNano()
				if ts.ExitedAt.IsZero() {
					st.FinishedAt = time.Now().UnixNano()
				}
				st.ExitCode = int32(ts.ExitStatus)
				if st.Reason != reasonOOMKilled {
					st.Reason = exitReason(st.ExitCode)
				}
			}
		default:
			st.Unknown = true
		}
	}

	c, err := store.NewContainer(md, st, s.containerStatusFile(id))
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", id, err)
	}
	if cio != nil {
		c.IO = cio
		if st.State() == runtime.ContainerState_CONTAINER_RUNNING {
			if err := s.attachLog(c, cio); err != nil {
				log.G(ctx).WithError(err).WithField("id", id).Warn("CRI: cannot reopen a container's log")
			}
			cio.Pipe()
		}
	}
	if st.State() == runtime.ContainerState_CONTAINER_EXITED {
		c.MarkStopped()
	}
	return c, nil
}

// exitedUnknown marks a container exited without a known exit status.
func exitedUnknown(st store.ContainerStatus) store.ContainerStatus {
	st.Pid = 0
	st.FinishedAt = time.Now().UnixNano()
	st.ExitCode = exitCodeUnknown
	st.Reason = reasonUnknown
	return st
}

// killAndDelete ends a task that must not run and deletes it.
func (s *Service) killAndDelete(ctx context.Context, id string) error {
	task, err := s.deps.Tasks.Get(ctx, id)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return err
	}
	if err := task.Kill(ctx, 9, true); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("killing the task of container %s: %w", id, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := task.Wait(wctx); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("waiting for the task of container %s: %w", id, err)
	}
	if _, err := s.deps.Tasks.Delete(ctx, id); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("deleting the task of container %s: %w", id, err)
	}
	return nil
}
