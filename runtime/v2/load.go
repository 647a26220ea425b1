package v2

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/ttrpc"
	"github.com/sirupsen/logrus"

	taskapi "github.com/llitfkitfk/containerd/api/runtime/task/v2"
	tasktypes "github.com/llitfkitfk/containerd/api/types/task"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/identifiers"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/namespaces"
)

// loadExisting goes through the bundles a previous run of the daemon left:
// tasks whose shims answer are taken back, the rest cleaned up. The daemon
// may have been killed at any point, so a bundle may be half made.
func (m *TaskManager) loadExisting(ctx context.Context) error {
	nsDirs, err := os.ReadDir(m.state)
	if err != nil {
		return fmt.Errorf("read runtime state: %w", err)
	}
	for _, d := range nsDirs {
		ns := d.Name()
		if !d.IsDir() || identifiers.Validate(ns) != nil {
			continue
		}
		m.loadNamespace(namespaces.WithNamespace(ctx, ns), ns)
	}
	// Work directories outlive bundles, which go with a reboot.
	nsDirs, err = os.ReadDir(m.root)
	if err != nil {
		return fmt.Errorf("read runtime root: %w", err)
	}
	for _, d := range nsDirs {
		if d.IsDir() && identifiers.Validate(d.Name()) == nil {
			m.removeStaleWork(ctx, d.Name())
		}
	}
	return nil
}

func (m *TaskManager) loadNamespace(ctx context.Context, ns string) {
	dir := filepath.Join(m.state, ns)
	entries, err := os.ReadDir(dir)
	if err != nil {
		log.G(ctx).WithError(err).WithField("namespace", ns).Error("read bundles")
		return
	}
	var retired []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			retired = append(retired, filepath.Join(dir, name))
			continue
		}
		if !e.IsDir() || identifiers.Validate(name) != nil {
			continue
		}
		m.loadTask(ctx, bundlePaths(m.root, m.state, ns, name))
	}
	// Retired bundles the daemon died before removing, perhaps before
	// their shims were let go; after the live tasks are taken back, so
	// that a shim still serving some of them is known to stay.
	for _, path := range retired {
		m.stopRetiredShim(ctx, path)
		os.RemoveAll(path)
	}
}

// loadTask takes back the task of bundle b, or cleans up after it.
func (m *TaskManager) loadTask(ctx context.Context, b *bundle) {
	logger := log.G(ctx).WithFields(logrus.Fields{"id": b.id, "namespace": b.namespace})
	path, err := os.ReadFile(b.file(shimBinaryFile))
	if err != nil {
		// Killed before any shim was started: nothing ran.
		logger.Info("removing bundle of a task never started")
		if err := b.delete(); err != nil {
			logger.WithError(err).Error("remove bundle")
		}
		return
	}
	bin := m.binary(b, string(path))
	ep, err := readEndpoint(b.path)
	if errors.Is(err, os.ErrNotExist) {
		// The shim's start did not finish, so no task was created.
		logger.Info("cleaning up after a shim that did not start")
		m.cleanupShim(ctx, b, bin)
		return
	}
	var s *shimTask
	if err == nil {
		s, err = m.reconnect(ctx, bin, ep)
	}
	if err == nil {
		sctx, cancel := context.WithTimeout(ctx, loadTimeout)
		resp, serr := s.task.State(sctx, &taskapi.StateRequest{Id: b.id})
		cancel()
		switch {
		case serr == nil:
			if resp.GetStatus() == tasktypes.Status_STOPPED {
				s.exited.Store(true)
			}
			if err := m.tasks.add(s); err != nil {
				m.stopShim(ctx, s, false)
				return
			}
			if !s.arm() {
				m.cleanupDead(s) // died since it answered
			}
			return
		case !errors.Is(serr, ttrpc.ErrClosed) && errdefs.IsNotFound(shimErr(serr)):
			// The shim answers but has no such task: it was never
			// created, or was deleted before the daemon could finish.
			m.stopShim(ctx, s, false)
			m.cleanupShim(ctx, b, bin)
			return
		}
		m.stopShim(ctx, s, false)
		err = shimErr(serr)
	}
	logger.WithError(err).Warn("shim is gone; cleaning up after it")
	exit := m.cleanupShim(ctx, b, bin)
	m.publishGone(ctx, b.id, exit, false)
}

// stopRetiredShim asks the shim of a retired bundle, if it still runs, to
// exit, and waits until it has. Its task was deleted before the bundle
// was retired, so nothing else is left to clean up. A shim that serves
// live tasks of the same group as well is left alone: it exits with the
// last of them.
func (m *TaskManager) stopRetiredShim(ctx context.Context, path string) {
	ep, err := readEndpoint(path)
	if err != nil {
		return // no shim was started
	}
	for _, s := range m.tasks.list("") {
		if s.endpoint.Address == ep.Address {
			return
		}
	}
	conn, err := dialShim(ep.Address)
	if err != nil {
		return // gone already
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	task, err := newTaskClient(client, ep.Version)
	if err != nil {
		return
	}
	// The hidden name is "." + id + "." + a suffix without dots.
	name := filepath.Base(path)
	id := name[1:max(1, strings.LastIndexByte(name, '.'))]
	log.G(ctx).WithField("id", id).Info("stopping the shim of a deleted task")
	sctx, cancel := context.WithTimeout(ctx, shutdownTimeout)
	defer cancel()
	_, err = task.Shutdown(sctx, &taskapi.ShutdownRequest{Id: id})
	if err != nil && !errors.Is(err, ttrpc.ErrClosed) {
		log.G(ctx).WithError(shimErr(err)).WithField("id", id).Warn("shut down shim of a deleted task")
		return
	}
	client.UserOnCloseWait(sctx)
}

// reconnect connects to the shim at the endpoint the bundle holds.
func (m *TaskManager) reconnect(ctx context.Context, bin *shimBinary, ep *endpoint) (*shimTask, error) {
	logs, err := copyShimLog(m.ctx, bin.bundle)
	if err != nil {
		return nil, err
	}
	return m.connect(ctx, bin, ep, logs)
}

// removeStaleWork removes the work directories in ns that no task owns.
func (m *TaskManager) removeStaleWork(ctx context.Context, ns string) {
	dir := filepath.Join(m.root, ns)
	entries, err := os.ReadDir(dir)
	if err != nil {
		log.G(ctx).WithError(err).WithField("namespace", ns).Error("read work directories")
		return
	}
	for _, e := range entries {
		if _, err := m.tasks.get(ns, e.Name()); err == nil {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			log.G(ctx).WithError(err).WithField("namespace", ns).Error("remove stale work directory")
		}
	}
}
