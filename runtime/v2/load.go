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
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			// A retired bundle the daemon died before removing, perhaps
			// before its shim was let go.
			path := filepath.Join(dir, name)
			m.stopRetiredShim(ctx, path)
			os.RemoveAll(path)
			continue
		}
		if !e.IsDir() || identifiers.Validate(name) != nil {
			continue
		}
		m.loadTask(ctx, bundlePaths(m.root, m.state, ns, name))
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
	data, err := os.ReadFile(b.file(addressFile))
	if err != nil {
		// The shim's start did not finish, so no task was created.
		logger.Info("cleaning up after a shim that did not start")
		m.cleanupShim(ctx, b, bin)
		return
	}
	s, err := m.reconnect(ctx, bin, data)
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
				m.stopShim(ctx, s)
				return
			}
			if !s.arm() {
				m.cleanupDead(s) // died since it answered
			}
			return
		case !errors.Is(serr, ttrpc.ErrClosed) && errdefs.IsNotFound(shimErr(serr)):
			// The shim answers but has no such task: it was never
			// created, or was deleted before the daemon could finish.
			m.stopShim(ctx, s)
			m.cleanupShim(ctx, b, bin)
			return
		}
		m.stopShim(ctx, s)
		err = shimErr(serr)
	}
	logger.WithError(err).Warn("shim is gone; cleaning up after it")
	exit := m.cleanupShim(ctx, b, bin)
	m.publishGone(ctx, b.id, exit, false)
}

// stopRetiredShim asks the shim of a retired bundle, if it still runs, to
// exit, and waits until it has. Its task was deleted before the bundle
// was retired, so nothing else is left to clean up.
func (m *TaskManager) stopRetiredShim(ctx context.Context, path string) {
	data, err := os.ReadFile(filepath.Join(path, addressFile))
	if err != nil {
		return // no shim was started
	}
	address, err := parseAddress(data)
	if err != nil {
		return
	}
	conn, err := dialShim(address)
	if err != nil {
		return // gone already
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	// The hidden name is "." + id + "." + a suffix without dots.
	name := filepath.Base(path)
	id := name[1:max(1, strings.LastIndexByte(name, '.'))]
	log.G(ctx).WithField("id", id).Info("stopping the shim of a deleted task")
	sctx, cancel := context.WithTimeout(ctx, shutdownTimeout)
	defer cancel()
	_, err = taskapi.NewTaskClient(client).Shutdown(sctx, &taskapi.ShutdownRequest{Id: id})
	if err != nil && !errors.Is(err, ttrpc.ErrClosed) {
		log.G(ctx).WithError(shimErr(err)).WithField("id", id).Warn("shut down shim of a deleted task")
		return
	}
	client.UserOnCloseWait(sctx)
}

// reconnect connects to the shim whose address the bundle holds.
func (m *TaskManager) reconnect(ctx context.Context, bin *shimBinary, data []byte) (*shimTask, error) {
	address, err := parseAddress(data)
	if err != nil {
		return nil, err
	}
	logs, err := copyShimLog(m.ctx, bin.bundle)
	if err != nil {
		return nil, err
	}
	return m.connect(ctx, bin, address, logs)
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
