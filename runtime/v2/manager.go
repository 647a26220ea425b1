// Package v2 is the shim v2 runtime: every task runs under a shim binary
// of its own (containerd-shim-runc-v2 for io.containerd.runc.v2), which the
// daemon starts and drives over ttrpc. Shims outlive the daemon; on start
// the daemon finds them again by their bundles, and cleans up after those
// that died meanwhile.
package v2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/api/convert"
	taskapi "github.com/llitfkitfk/containerd/api/runtime/task/v2"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/identifiers"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/runtime"
)

const (
	// loadTimeout bounds the first calls to a shim, which tell whether it
	// is alive.
	loadTimeout = 5 * time.Second
	// shutdownTimeout bounds asking a shim to exit.
	shutdownTimeout = 3 * time.Second
)

// Events is what the runtime needs of the daemon's event exchange.
type Events interface {
	events.Publisher
	events.Subscriber
}

// ManagerConfig is what a TaskManager is made from.
type ManagerConfig struct {
	// Root holds the tasks' work directories, State their bundles.
	Root  string
	State string
	// Address is the daemon's gRPC address and TTRPCAddress its ttrpc
	// address, which shims are given to reach the daemon.
	Address      string
	TTRPCAddress string
	// Events gets the exits of tasks whose shims died, and is watched for
	// the exits that shims publish themselves.
	Events Events
	// SchedCore asks shims to put their containers in a core scheduling
	// group of their own.
	SchedCore bool
}

// TaskManager is the shim v2 runtime.PlatformRuntime.
type TaskManager struct {
	root, state           string
	address, ttrpcAddress string
	schedCore             bool
	events                Events

	// ctx is for work that outlives a call: copying shim logs and
	// cleaning up after dead shims. cancel ends watching for exits.
	ctx    context.Context
	cancel context.CancelFunc

	tasks *taskList
	shims sync.Map // runtime name -> shim binary path
	// protocols remembers how each shim binary is started.
	protocols sync.Map // protocolKey -> startProtocol
	// procs counts the tasks on each shim that is our child, which is
	// reaped once, when the last of them lets go.
	procs shimProcs
	// background counts the teardowns of deleted tasks still under way
	// after their deletion returned: shims exiting, bundles being removed.
	// Once closing is set, teardowns run before Delete returns instead, so
	// that none starts while Close waits.
	background sync.WaitGroup
	bgMu       sync.Mutex
	closing    bool
}

var _ runtime.PlatformRuntime = (*TaskManager)(nil)

// New returns a TaskManager that has taken back the tasks whose shims are
// still running and cleaned up after the rest.
func New(ctx context.Context, config *ManagerConfig) (*TaskManager, error) {
	for _, dir := range []string{config.Root, config.State} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return nil, fmt.Errorf("create runtime directory: %w", err)
		}
	}
	m := &TaskManager{
		root:         config.Root,
		state:        config.State,
		address:      config.Address,
		ttrpcAddress: config.TTRPCAddress,
		schedCore:    config.SchedCore,
		events:       config.Events,
		ctx:          context.WithoutCancel(ctx),
		tasks:        newTaskList(),
	}
	if m.events == nil {
		return nil, errors.New("runtime needs an event exchange")
	}
	if err := m.loadExisting(ctx); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	m.cancel = cancel
	go m.watchExits(wctx)
	return m, nil
}

// ID returns the runtime's plugin URI.
func (m *TaskManager) ID() string { return plugin.RuntimePluginV2.String() + ".task" }

// Create starts a shim for the task and has it create the task.
func (m *TaskManager) Create(ctx context.Context, id string, opts runtime.CreateOpts) (_ runtime.Task, retErr error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	if err := identifiers.Validate(id); err != nil {
		return nil, fmt.Errorf("invalid task id: %w", err)
	}
	if opts.Spec == nil {
		return nil, fmt.Errorf("task %s has no spec: %w", id, errdefs.ErrInvalidArgument)
	}
	path, err := m.lookupShim(opts.Runtime)
	if err != nil {
		return nil, err
	}
	if err := m.reserve(ctx, ns, id); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			m.tasks.release(ns, id)
		}
	}()

	b, err := newBundle(m.root, m.state, ns, id, opts.Spec.GetValue())
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			if err := b.delete(); err != nil {
				log.G(ctx).WithError(err).WithField("id", id).Error("remove bundle of failed task")
			}
		}
	}()
	// Recorded before the shim starts, so that after a crash the daemon
	// knows which shim's delete command cleans up after it.
	if err := writeAtomic(b.file(shimBinaryFile), []byte(path)); err != nil {
		return nil, err
	}
	bin := m.binary(b, path)
	s := m.joinGroup(ctx, ns, bin, opts.Group)
	if s == nil {
		s, err = m.startShim(ctx, bin, shimOptions(opts))
	}
	if err != nil {
		return nil, fmt.Errorf("start shim for task %s: %w", id, err)
	}
	resp, err := s.task.Create(ctx, createRequest(b, opts))
	if err != nil {
		m.abandon(ctx, s)
		return nil, fmt.Errorf("create task %s: %w", id, shimErr(err))
	}
	s.pid.Store(resp.GetPid())
	if err := m.tasks.add(s); err != nil {
		m.abandon(ctx, s)
		return nil, err
	}
	if !s.arm() {
		m.tasks.unlist(s)
		m.abandon(ctx, s)
		return nil, fmt.Errorf("create task %s: shim exited: %w", id, errdefs.ErrUnavailable)
	}
	return s, nil
}

// reserve takes id in ns for a task about to be created. An id held by a
// task whose shim has died is taken once that task is cleaned up: calls to
// a dead shim fail as soon as its connection breaks, before the close
// handler that cleans up after it has run, so a client may well create
// the id again in between.
func (m *TaskManager) reserve(ctx context.Context, ns, id string) error {
	for {
		err := m.tasks.reserve(ctx, ns, id)
		if !errdefs.IsAlreadyExists(err) {
			return err
		}
		s := m.tasks.listed(ns, id)
		if s == nil {
			return err // being created
		}
		if _, cerr := s.task.Connect(ctx, &taskapi.ConnectRequest{Id: id}); !errors.Is(cerr, ttrpc.ErrClosed) {
			return err // alive
		}
		if werr := s.client.UserOnCloseWait(ctx); werr != nil {
			return fmt.Errorf("task %s: waiting for the cleanup after its dead shim: %w", id, werr)
		}
	}
}

// Get returns the task id of the context's namespace.
func (m *TaskManager) Get(ctx context.Context, id string) (runtime.Task, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	return m.tasks.get(ns, id)
}

// Tasks lists the tasks of the context's namespace, or all of them.
func (m *TaskManager) Tasks(ctx context.Context, all bool) ([]runtime.Task, error) {
	var ns string
	if !all {
		var err error
		if ns, err = namespaces.NamespaceRequired(ctx); err != nil {
			return nil, err
		}
	}
	list := m.tasks.list(ns)
	out := make([]runtime.Task, len(list))
	for i, s := range list {
		out[i] = s
	}
	return out, nil
}

// Delete deletes the task in its shim and removes the bundle. The shim is
// let go after Delete returns, with the id held until it has exited. It
// publishes nothing: that is for the caller, which knows why.
func (m *TaskManager) Delete(ctx context.Context, id string) (*runtime.Exit, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	s, err := m.tasks.get(ns, id)
	if err != nil {
		return nil, err
	}
	resp, err := s.task.Delete(ctx, &taskapi.DeleteRequest{Id: id})
	if err != nil {
		if errors.Is(err, ttrpc.ErrClosed) {
			// The shim died; its disconnect handler cleans up and reports
			// the exit. Wait for it, so the id is free on return.
			s.client.UserOnCloseWait(ctx)
			return nil, fmt.Errorf("delete task %s: shim disconnected: %w", id, errdefs.ErrNotFound)
		}
		if err = shimErr(err); !errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("delete task %s: %w", id, err)
		}
		// The shim has no such task; let it go all the same.
	}
	// From here the shim's exit is no death to clean up after.
	s.detach()
	free := m.tasks.leave(s)
	if free == nil {
		return nil, fmt.Errorf("task %s: %w", id, errdefs.ErrNotFound) // deleted meanwhile
	}
	// Half a teardown would leave the id taken: finish it regardless.
	ctx = context.WithoutCancel(ctx)
	retired, berr := s.bundle.retire()
	if berr != nil {
		log.G(ctx).WithError(berr).WithField("id", id).Error("remove bundle")
	}
	// Asking the shim to exit and waiting for it is no part of the answer:
	// the task is gone once the shim has deleted it and the bundle is put
	// away. Should the daemon die first, the next start finds the shim
	// through the retired bundle and stops it.
	m.later(func() {
		m.stopShim(ctx, s, !m.sharesShim(s))
		free()
		if err := removeRetired(retired); err != nil {
			log.G(ctx).WithError(err).WithField("id", id).Error("remove bundle")
		}
	})
	if err != nil {
		return nil, fmt.Errorf("delete task %s: %w", id, err)
	}
	return &runtime.Exit{Pid: resp.GetPid(), Status: resp.GetExitStatus(), Timestamp: convert.TimestampFromProto(resp.GetExitedAt())}, nil
}

// later runs fn in the background, or at once if the manager is closing.
func (m *TaskManager) later(fn func()) {
	m.bgMu.Lock()
	if m.closing {
		m.bgMu.Unlock()
		fn()
		return
	}
	m.background.Add(1)
	m.bgMu.Unlock()
	go func() {
		defer m.background.Done()
		fn()
	}()
}

// Close lets go of every shim without stopping it, as the daemon does when
// it exits: the tasks run on and are found again on the next start.
func (m *TaskManager) Close() error {
	m.cancel()
	m.bgMu.Lock()
	m.closing = true
	m.bgMu.Unlock()
	m.background.Wait()
	for _, s := range m.tasks.list("") {
		s.detach()
		s.client.Close()
	}
	return nil
}

func (m *TaskManager) lookupShim(runtime string) (string, error) {
	if path, ok := m.shims.Load(runtime); ok {
		return path.(string), nil
	}
	path, err := lookupShim(runtime)
	if err != nil {
		return "", err
	}
	m.shims.Store(runtime, path)
	return path, nil
}

func (m *TaskManager) binary(b *bundle, path string) *shimBinary {
	return &shimBinary{
		path:         path,
		address:      m.address,
		ttrpcAddress: m.ttrpcAddress,
		schedCore:    m.schedCore,
		bundle:       b,
	}
}

// startShim starts the task's shim, or has it find the running shim of the
// task's group, and connects to it. The start protocol that worked is
// remembered for the binary, so that a 2.3+ shim is refused the legacy
// start only once per daemon run (and again after it is replaced).
func (m *TaskManager) startShim(ctx context.Context, bin *shimBinary, opts *anypb.Any) (*shimTask, error) {
	b := bin.bundle
	// The shim opens the log fifo as it starts; it must have a reader.
	logs, err := copyShimLog(m.ctx, b)
	if err != nil {
		return nil, err
	}
	key, p := m.startProtocol(bin.path)
	ep, err := bin.start(ctx, opts, p)
	if errors.Is(err, errBootstrapRequired) {
		log.G(ctx).WithField("shim", bin.path).Debug("shim refused the legacy start; starting it with bootstrap parameters")
		p = protocolBootstrap
		ep, err = bin.start(ctx, opts, p)
	} else if err == nil && p == protocolUnknown {
		p = protocolLegacy
	}
	if err != nil {
		logs.Close()
		return nil, err
	}
	m.protocols.Store(key, p)
	if err := writeEndpoint(b, ep); err != nil {
		logs.Close()
		return nil, err
	}
	return m.connect(ctx, bin, ep, logs)
}

// joinGroup connects the task to the shim of its group's task, when that
// task is listed and run by the same shim binary: what the binary's start
// command would do for it (write the group's address into the bundle and
// answer it), without the exec, which is a good part of a pod container's
// start. nil when there is nothing to join or the shim does not answer;
// the shim's start then decides.
func (m *TaskManager) joinGroup(ctx context.Context, ns string, bin *shimBinary, group string) *shimTask {
	if group == "" || group == bin.bundle.id {
		return nil
	}
	leader := m.tasks.listed(ns, group)
	if leader == nil || leader.binary.path != bin.path {
		return nil
	}
	if err := writeEndpoint(bin.bundle, leader.endpoint); err != nil {
		log.G(ctx).WithError(err).WithField("id", bin.bundle.id).Debug("joining the group's shim")
		return nil
	}
	// The group's shim logs into its first task's bundle.
	s, err := m.connect(ctx, bin, leader.endpoint, nopCloser{})
	if err != nil {
		log.G(ctx).WithError(err).WithField("id", bin.bundle.id).Debug("joining the group's shim")
		return nil
	}
	return s
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// protocolKey names one shim binary as it is on disk: a binary replaced
// by another generation is detected anew.
type protocolKey struct {
	path        string
	size, mtime int64
}

// startProtocol returns what is known of how to start the shim at path.
func (m *TaskManager) startProtocol(path string) (protocolKey, startProtocol) {
	key := protocolKey{path: path}
	if fi, err := os.Stat(path); err == nil {
		key.size, key.mtime = fi.Size(), fi.ModTime().UnixNano()
	}
	if p, ok := m.protocols.Load(key); ok {
		return key, p.(startProtocol)
	}
	return key, protocolUnknown
}

// writeEndpoint keeps the shim's endpoint in the bundle, for the daemon's
// next start: bootstrap.json, as containerd 2.x keeps it, and the address
// file of 1.x shims, which write it themselves and others may not.
func writeEndpoint(b *bundle, ep *endpoint) error {
	data, err := json.Marshal(ep)
	if err != nil {
		return fmt.Errorf("shim endpoint of task %s: %w", b.id, err)
	}
	if err := writeAtomic(b.file(bootstrapFile), data); err != nil {
		return err
	}
	if _, err := os.Stat(b.file(addressFile)); errors.Is(err, os.ErrNotExist) {
		return writeAtomic(b.file(addressFile), []byte(ep.Address))
	}
	return nil
}

// readEndpoint reads the endpoint of the bundle's shim: bootstrap.json,
// else the address file of a bundle from before it was written.
func readEndpoint(dir string) (*endpoint, error) {
	data, err := os.ReadFile(filepath.Join(dir, bootstrapFile))
	if errors.Is(err, os.ErrNotExist) {
		data, err = os.ReadFile(filepath.Join(dir, addressFile))
	}
	if err != nil {
		return nil, err
	}
	return parseEndpoint(data)
}

// connect dials the shim at ep and asks for its pid, which also shows that
// it answers. Every task has a connection of its own, also when its shim
// serves other tasks of its group. On failure logs is closed.
func (m *TaskManager) connect(ctx context.Context, bin *shimBinary, ep *endpoint, logs io.Closer) (*shimTask, error) {
	conn, err := dialShim(ep.Address)
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("connect to shim at %s: %w", ep.Address, err)
	}
	s := &shimTask{bundle: bin.bundle, binary: bin, endpoint: ep, logs: logs, procs: &m.procs}
	s.client = ttrpc.NewClient(conn, ttrpc.WithOnClose(func() { m.shimDisconnected(s) }))
	if s.task, err = newTaskClient(s.client, ep.Version); err != nil {
		s.client.Close()
		return nil, err
	}

	cctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	resp, err := s.task.Connect(cctx, &taskapi.ConnectRequest{Id: s.ID()})
	if err != nil {
		s.client.Close()
		return nil, fmt.Errorf("connect to shim at %s: %w", ep.Address, shimErr(err))
	}
	s.shimPid = resp.GetShimPid()
	s.pid.Store(resp.GetTaskPid())
	if s.child = isChild(s.shimPid); s.child {
		m.procs.hold(s.shimPid)
	}
	return s, nil
}

// stopShim lets go of a shim whose task is deleted, or was never created:
// it asks the shim to exit (which it does once it serves no task), closes
// the task's connection and reaps the shim if this was its last task.
// With awaitExit, the shim is given until shutdownTimeout to end the
// connection as it exits, so that it is gone when the teardown is done;
// that is for a shim that serves no other task (see sharesShim): one that
// serves other tasks of its group runs on, and would be waited out.
func (m *TaskManager) stopShim(ctx context.Context, s *shimTask, awaitExit bool) {
	s.detach()
	sctx, cancel := context.WithTimeout(ctx, shutdownTimeout)
	_, err := s.task.Shutdown(sctx, &taskapi.ShutdownRequest{Id: s.ID()})
	if err == nil && awaitExit {
		s.client.UserOnCloseWait(sctx)
	}
	cancel()
	if err != nil && !errors.Is(err, ttrpc.ErrClosed) {
		log.G(ctx).WithError(shimErr(err)).WithField("id", s.ID()).Warn("shut down shim")
	}
	s.client.Close()
	wctx, cancel := context.WithTimeout(ctx, shutdownTimeout)
	s.client.UserOnCloseWait(wctx)
	cancel()
	s.reap()
}

// sharesShim reports whether a listed task other than s is served by s's
// shim. While the daemon loads its tasks, not all are listed yet.
func (m *TaskManager) sharesShim(s *shimTask) bool {
	for _, other := range m.tasks.list("") {
		if other != s && other.endpoint.Address == s.endpoint.Address {
			return true
		}
	}
	return false
}

// abandon undoes a task whose creation failed part way: whatever the shim
// made of it is deleted, the shim let go, and the shim's delete command
// run for what a dead shim may have left behind.
func (m *TaskManager) abandon(ctx context.Context, s *shimTask) {
	ctx = context.WithoutCancel(ctx)
	dctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	s.task.Delete(dctx, &taskapi.DeleteRequest{Id: s.ID()})
	cancel()
	m.stopShim(ctx, s, !m.sharesShim(s))
	if _, err := s.binary.delete(ctx); err != nil {
		log.G(ctx).WithError(err).WithField("id", s.ID()).Debug("clean up after failed create")
	}
}
