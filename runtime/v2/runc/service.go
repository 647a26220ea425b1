package runc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	gorunc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsapi "github.com/llitfkitfk/containerd/api/events"
	taskapi "github.com/llitfkitfk/containerd/api/runtime/task/v2"
	"github.com/llitfkitfk/containerd/api/types/runc/options"
	"github.com/llitfkitfk/containerd/api/types/task"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/identifiers"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/runtime/v2/shim"
	"github.com/llitfkitfk/containerd/version"
)

// Event topics, as containerd's runc shim publishes them.
const (
	topicCreate      = "/tasks/create"
	topicStart       = "/tasks/start"
	topicExit        = "/tasks/exit"
	topicDelete      = "/tasks/delete"
	topicOOM         = "/tasks/oom"
	topicExecAdded   = "/tasks/exec-added"
	topicExecStarted = "/tasks/exec-started"
	topicPaused      = "/tasks/paused"
	topicResumed     = "/tasks/resumed"
)

// How long Delete waits for a process's output to drain, and for the exit
// of a created container that runc delete killed.
const (
	ioDrainTimeout = 5 * time.Second
	killWaitTime   = 5 * time.Second
)

// process is a container's init (id "") or one of its execs.
type process struct {
	id   string
	c    *container
	io   *procIO
	s    stdio
	spec *specs.Process // an exec's

	// Guarded by service.mu.
	pid        int
	status     task.Status // CREATED, RUNNING or STOPPED; paused is the container's
	exitStatus int
	exitedAt   time.Time
	// hold keeps an exit that arrives while Start has not yet published
	// the start, so that the exit event comes after it; held is that exit.
	hold bool
	held *gorunc.Exit

	exited chan struct{} // closed once the exit is recorded
	// published is closed once the exit event is out, so that Delete,
	// which a client may call as soon as Wait returns, publishes
	// /tasks/delete after /tasks/exit.
	published chan struct{}
}

// taskID is the id the events give the process: the container's for init.
func (p *process) taskID() string {
	if p.id == "" {
		return p.c.id
	}
	return p.id
}

type container struct {
	id, bundle string
	runc       *gorunc.Runc
	opts       *options.Options
	init       *process
	cg         *taskCgroup // nil if it could not be loaded
	rootfs     string      // where Create mounted the rootfs, "" if it did not
	// killAll is whether init's exit must kill the execs: the kernel
	// does it only when the container has a pid namespace of its own.
	killAll bool

	// Guarded by service.mu.
	execs        map[string]*process
	paused       bool
	deleting     bool
	runningExecs int
	// initExit is init's exit, kept until the running execs have exited
	// and their exits are published.
	initExit *gorunc.Exit
}

type service struct {
	ctx       context.Context // carries the namespace, for events and runc
	ns        string
	publisher shim.Publisher
	shutdown  func()

	mu         sync.Mutex
	containers map[string]*container
	// running are the started processes by pid, until their exit.
	running map[int][]*process
	// starting counts the runc commands under way that start a process
	// whose pid the service does not know yet; while there are any, exits
	// of unknown pids are kept in early, since one may be that process's.
	starting int
	early    map[int]gorunc.Exit
}

var (
	reaperOnce sync.Once
	theReaper  *reaper
	servicesMu sync.Mutex
	services   []*service
)

// sharedReaper is the process's one reaper; it hands every exit no
// command waits for to each service (a shim has one; tests have several).
func sharedReaper() *reaper {
	reaperOnce.Do(func() {
		theReaper = newReaper(func(e gorunc.Exit) {
			servicesMu.Lock()
			ss := append([]*service(nil), services...)
			servicesMu.Unlock()
			for _, s := range ss {
				s.handleExit(e)
			}
		})
		gorunc.Monitor = theReaper
	})
	return theReaper
}

func newService(ctx context.Context, opts shim.ServiceOpts) (*service, error) {
	// The container processes runc starts must become our children
	// when runc exits, so that we get their exit statuses.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("become a child subreaper: %w", err)
	}
	if opts.Publisher == nil {
		return nil, fmt.Errorf("task service of %s: no publisher: %w", opts.ID, errdefs.ErrInvalidArgument)
	}
	shutdown := opts.Shutdown
	if shutdown == nil {
		shutdown = func() {}
	}
	s := &service{
		ctx:        namespaces.WithNamespace(context.WithoutCancel(ctx), opts.Namespace),
		ns:         opts.Namespace,
		publisher:  opts.Publisher,
		shutdown:   shutdown,
		containers: map[string]*container{},
		running:    map[int][]*process{},
		early:      map[int]gorunc.Exit{},
	}
	sharedReaper()
	servicesMu.Lock()
	services = append(services, s)
	servicesMu.Unlock()
	return s, nil
}

func (s *service) publish(topic string, ev proto.Message) {
	if err := s.publisher.Publish(s.ctx, topic, ev); err != nil {
		log.GetLogger(s.ctx).WithError(err).Errorf("publish %s", topic)
	}
}

// get returns the container id, or NotFound.
func (s *service) get(id string) (*container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.containers[id]
	if c == nil || c.init == nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound))
	}
	return c, nil
}

// process returns init (execID "") or an exec of c; s.mu must be held.
func (c *container) process(execID string) (*process, error) {
	if execID == "" {
		return c.init, nil
	}
	p := c.execs[execID]
	if p == nil {
		return nil, fmt.Errorf("exec %s of container %s: %w", execID, c.id, errdefs.ErrNotFound)
	}
	return p, nil
}

func (s *service) getProcess(id, execID string) (*container, *process, error) {
	c, err := s.get(id)
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := c.process(execID)
	if err != nil {
		return nil, nil, errdefs.ToGRPC(err)
	}
	return c, p, nil
}

// runcErr makes runc's failure say why: runc writes its error to the log
// file, not to output the shim keeps (the container's stdio gets it).
func runcErr(what string, c *container, err error) error {
	if err == nil {
		return nil
	}
	if msg := lastRuncError(c.runc.Log); msg != "" {
		return fmt.Errorf("%s %s: %s: %w", what, c.id, msg, err)
	}
	return fmt.Errorf("%s %s: %w", what, c.id, err)
}

// lastRuncError is the message of the last error in runc's JSON log.
func lastRuncError(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		var l struct{ Level, Msg string }
		if json.Unmarshal([]byte(lines[i]), &l) == nil && (l.Level == "error" || l.Level == "fatal") {
			return l.Msg
		}
	}
	return ""
}

// Create makes the container: mounts its rootfs into the bundle, sets up
// its init's stdio and runs `runc create`. Init waits for Start.
func (s *service) Create(ctx context.Context, r *taskapi.CreateTaskRequest) (_ *taskapi.CreateTaskResponse, retErr error) {
	if r.GetBundle() == "" {
		return nil, errdefs.ToGRPC(fmt.Errorf("create: bundle is required: %w", errdefs.ErrInvalidArgument))
	}
	if err := identifiers.Validate(r.GetId()); err != nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("create: container id: %w", err))
	}
	if r.GetCheckpoint() != "" {
		return nil, errdefs.ToGRPC(fmt.Errorf("create %s from a checkpoint: %w", r.GetId(), errdefs.ErrNotImplemented))
	}
	s.mu.Lock()
	if _, ok := s.containers[r.GetId()]; ok {
		s.mu.Unlock()
		return nil, errdefs.ToGRPC(fmt.Errorf("container %s: %w", r.GetId(), errdefs.ErrAlreadyExists))
	}
	// Reserve the id; get ignores a container without init.
	c := &container{id: r.GetId(), bundle: r.GetBundle(), execs: map[string]*process{}}
	s.containers[c.id] = c
	s.mu.Unlock()
	var cleanups []func()
	defer func() {
		if retErr == nil {
			return
		}
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		s.mu.Lock()
		delete(s.containers, c.id)
		s.mu.Unlock()
		retErr = errdefs.ToGRPC(retErr)
	}()

	o, err := parseOptions(r.GetOptions())
	if err != nil {
		return nil, err
	}
	c.opts = o
	c.runc = newRunc(o, s.ns)
	c.runc.Log = filepath.Join(c.bundle, "log.json")
	c.runc.LogFormat = gorunc.JSON
	if err := writeOptions(c.bundle, o); err != nil {
		return nil, fmt.Errorf("create %s: keep its options: %w", c.id, err)
	}
	spec, err := readSpec(c.bundle)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", c.id, err)
	}
	c.killAll = !ownPidNamespace(spec)

	if len(r.GetRootfs()) > 0 {
		rootfs := filepath.Join(c.bundle, "rootfs")
		if err := os.MkdirAll(rootfs, 0o711); err != nil {
			return nil, err
		}
		var mounts []mount.Mount
		for _, m := range r.GetRootfs() {
			mounts = append(mounts, mount.Mount{Type: m.GetType(), Source: m.GetSource(), Target: m.GetTarget(), Options: m.GetOptions()})
		}
		if err := mount.All(mounts, rootfs); err != nil {
			return nil, fmt.Errorf("create %s: mount rootfs: %w", c.id, err)
		}
		c.rootfs = rootfs
		cleanups = append(cleanups, func() { _ = mount.UnmountAll(rootfs, 0) })
	}

	st := stdio{stdin: r.GetStdin(), stdout: r.GetStdout(), stderr: r.GetStderr(), terminal: r.GetTerminal()}
	pio, err := newProcIO(ctx, sharedReaper(), c.id, s.ns, st, int(o.GetIoUid()), int(o.GetIoGid()))
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, pio.close)
	p := &process{c: c, io: pio, s: st, exited: make(chan struct{}), published: make(chan struct{})}

	pidFile := filepath.Join(c.bundle, initPidFile)
	s.beginStart()
	err = c.runc.Create(s.ctx, c.id, c.bundle, &gorunc.CreateOpts{
		IO:            pio.rio,
		PidFile:       pidFile,
		ConsoleSocket: pio.consoleSocket(),
		NoPivot:       o.GetNoPivotRoot(),
		NoNewKeyring:  o.GetNoNewKeyring(),
	})
	pid := 0
	if err == nil {
		pid, err = gorunc.ReadPidFile(pidFile)
	}
	if err != nil {
		s.endStart(nil, 0)
		return nil, runcErr("runc create", c, err)
	}
	cleanups = append(cleanups, func() {
		_ = c.runc.Delete(s.ctx, c.id, &gorunc.DeleteOpts{Force: true})
	})
	if err := pio.start(s.ctx); err != nil {
		s.endStart(nil, 0)
		return nil, fmt.Errorf("create %s: %w", c.id, err)
	}
	if cg, err := loadCgroup(pid); err != nil {
		log.GetLogger(ctx).WithError(err).Warnf("container %s: no metrics and OOM events", c.id)
	} else {
		c.cg = cg
		// Watch from now: init may run out of memory as soon as it starts.
		if err := cg.watchOOM(func() { s.publish(topicOOM, &eventsapi.TaskOOM{ContainerId: c.id}) }); err != nil {
			log.GetLogger(ctx).WithError(err).Warnf("container %s: no OOM events", c.id)
		}
	}

	s.publish(topicCreate, &eventsapi.TaskCreate{
		ContainerId: c.id,
		Bundle:      c.bundle,
		Rootfs:      r.GetRootfs(),
		Io:          &eventsapi.TaskIO{Stdin: st.stdin, Stdout: st.stdout, Stderr: st.stderr, Terminal: st.terminal},
		Checkpoint:  r.GetCheckpoint(),
		Pid:         uint32(pid),
	})
	s.mu.Lock()
	p.pid = pid
	p.status = task.Status_CREATED
	c.init = p
	s.mu.Unlock()
	s.endStart(p, pid)
	return &taskapi.CreateTaskResponse{Pid: uint32(pid)}, nil
}

// beginStart opens a window in which exits of pids the service does not
// know are kept: a process being started may exit before its pid is known.
func (s *service) beginStart() {
	s.mu.Lock()
	s.starting++
	s.mu.Unlock()
}

// endStart closes the window of beginStart. p, started as pid, now gets
// its exit: one kept in the window is handled at once, a later one by
// handleExit. With p nil, the start failed.
//
// A kept exit is taken for p's by its pid alone. It could be another's
// only if a process of that pid was reaped during the window and the pid
// reused for p in the same window, which pid allocation (ascending, up
// to pid_max before wrapping) makes all but impossible; containerd's shim
// accepts the same.
func (s *service) endStart(p *process, pid int) {
	s.mu.Lock()
	s.starting--
	e, exited := s.early[pid]
	if p != nil {
		if exited {
			delete(s.early, pid)
		} else {
			s.running[pid] = append(s.running[pid], p)
		}
	}
	if s.starting == 0 {
		clear(s.early)
	}
	s.mu.Unlock()
	if p != nil && exited {
		s.processExited(p, e)
	}
}

// handleExit gets the exit of every child of the shim that no command
// waited for, in reaping order.
func (s *service) handleExit(e gorunc.Exit) {
	s.mu.Lock()
	ps := s.running[e.Pid]
	if len(ps) == 0 {
		if s.starting > 0 {
			s.early[e.Pid] = e
		}
		s.mu.Unlock()
		return // an orphan the container left behind
	}
	delete(s.running, e.Pid)
	var now []*process
	for _, p := range ps {
		if p.hold {
			p.held = &e
		} else {
			now = append(now, p)
		}
	}
	s.mu.Unlock()
	for _, p := range now {
		s.processExited(p, e)
	}
}

// processExited handles a process's exit. Init's exit kills the execs that
// the kernel does not, and is published only after theirs.
func (s *service) processExited(p *process, e gorunc.Exit) {
	c := p.c
	if p.id == "" {
		if c.killAll {
			if err := c.runc.Kill(s.ctx, c.id, int(unix.SIGKILL), &gorunc.KillOpts{All: true}); err != nil {
				log.GetLogger(s.ctx).WithError(err).Debugf("kill the processes left in %s", c.id)
			}
		}
		s.mu.Lock()
		if c.runningExecs > 0 {
			c.initExit = &e
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		s.recordExit(p, e)
		return
	}
	s.recordExit(p, e)
	s.mu.Lock()
	c.runningExecs--
	var initExit *gorunc.Exit
	if c.runningExecs == 0 && c.initExit != nil {
		initExit, c.initExit = c.initExit, nil
	}
	s.mu.Unlock()
	if initExit != nil {
		s.recordExit(c.init, *initExit)
	}
}

// recordExit marks p stopped, wakes its waiters and publishes its exit.
func (s *service) recordExit(p *process, e gorunc.Exit) {
	s.mu.Lock()
	p.status = task.Status_STOPPED
	p.exitStatus = e.Status
	p.exitedAt = e.Timestamp
	close(p.exited)
	s.mu.Unlock()
	if p.id == "" {
		// For the delete command, should the shim die before Delete.
		if err := writeExit(p.c.bundle, recordedExit{Pid: e.Pid, Status: e.Status, ExitedAt: e.Timestamp}); err != nil {
			log.GetLogger(s.ctx).WithError(err).Warnf("record the exit of %s", p.c.id)
		}
	}
	s.publish(topicExit, &eventsapi.TaskExit{
		ContainerId: p.c.id,
		Id:          p.taskID(),
		Pid:         uint32(e.Pid),
		ExitStatus:  uint32(e.Status),
		ExitedAt:    timestamppb.New(e.Timestamp),
	})
	close(p.published)
}

// Start starts init (`runc start`) or an exec (`runc exec --detach`).
func (s *service) Start(ctx context.Context, r *taskapi.StartRequest) (*taskapi.StartResponse, error) {
	c, p, err := s.getProcess(r.GetId(), r.GetExecId())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if p.status != task.Status_CREATED || p.hold {
		s.mu.Unlock()
		return nil, errdefs.ToGRPC(fmt.Errorf("start %s of %s: it is %s, not created: %w",
			p.taskID(), c.id, strings.ToLower(p.status.String()), errdefs.ErrFailedPrecondition))
	}
	if p.id != "" && (c.init.status != task.Status_RUNNING || c.paused) {
		st := c.init.status
		if c.paused {
			st = task.Status_PAUSED
		}
		s.mu.Unlock()
		return nil, errdefs.ToGRPC(fmt.Errorf("start exec %s: container %s is %s, not running: %w",
			p.id, c.id, strings.ToLower(st.String()), errdefs.ErrFailedPrecondition))
	}
	if p.id == "" {
		p.hold = true
	}
	s.mu.Unlock()
	if p.id == "" {
		return s.startInit(c, p)
	}
	return s.startExec(ctx, c, p)
}

func (s *service) startInit(c *container, p *process) (*taskapi.StartResponse, error) {
	err := c.runc.Start(s.ctx, c.id)
	if err == nil {
		s.publish(topicStart, &eventsapi.TaskStart{ContainerId: c.id, Pid: uint32(p.pid)})
	}
	s.mu.Lock()
	p.hold = false
	held := p.held
	p.held = nil
	if err == nil && p.status == task.Status_CREATED {
		p.status = task.Status_RUNNING
	}
	s.mu.Unlock()
	if held != nil {
		s.processExited(p, *held)
	}
	if err != nil {
		return nil, errdefs.ToGRPC(runcErr("runc start", c, err))
	}
	return &taskapi.StartResponse{Pid: uint32(p.pid)}, nil
}

func (s *service) startExec(ctx context.Context, c *container, p *process) (*taskapi.StartResponse, error) {
	// The exec counts as running from now, so that an init exit that
	// comes meanwhile waits for its exit.
	s.mu.Lock()
	p.status = task.Status_RUNNING
	c.runningExecs++
	s.mu.Unlock()
	fail := func(err error) (*taskapi.StartResponse, error) {
		s.endStart(nil, 0)
		s.mu.Lock()
		p.status = task.Status_STOPPED
		p.exitStatus = 255
		p.exitedAt = time.Now()
		close(p.exited)
		close(p.published)
		c.runningExecs--
		var initExit *gorunc.Exit
		if c.runningExecs == 0 && c.initExit != nil {
			initExit, c.initExit = c.initExit, nil
		}
		s.mu.Unlock()
		if initExit != nil {
			s.recordExit(c.init, *initExit)
		}
		return nil, errdefs.ToGRPC(err)
	}
	pidFile := filepath.Join(c.bundle, p.id+".pid")
	s.beginStart()
	err := c.runc.Exec(s.ctx, c.id, *p.spec, &gorunc.ExecOpts{
		IO:            p.io.rio,
		PidFile:       pidFile,
		ConsoleSocket: p.io.consoleSocket(),
		Detach:        true,
	})
	pid := 0
	if err == nil {
		pid, err = gorunc.ReadPidFile(pidFile)
		os.Remove(pidFile)
	}
	if err != nil {
		return fail(runcErr("runc exec", c, err))
	}
	if err := p.io.start(s.ctx); err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		log.GetLogger(ctx).WithError(err).Errorf("exec %s of %s", p.id, c.id)
	}
	s.publish(topicExecStarted, &eventsapi.TaskExecStarted{ContainerId: c.id, ExecId: p.id, Pid: uint32(pid)})
	s.mu.Lock()
	p.pid = pid
	s.mu.Unlock()
	s.endStart(p, pid)
	return &taskapi.StartResponse{Pid: uint32(pid)}, nil
}

// Delete deletes an exec that is not running, or the container once init
// is stopped (or never started): runc delete, its rootfs unmounted.
func (s *service) Delete(ctx context.Context, r *taskapi.DeleteRequest) (*taskapi.DeleteResponse, error) {
	c, p, err := s.getProcess(r.GetId(), r.GetExecId())
	if err != nil {
		return nil, err
	}
	if p.id != "" {
		s.mu.Lock()
		if p.status == task.Status_RUNNING {
			s.mu.Unlock()
			return nil, errdefs.ToGRPC(fmt.Errorf("delete exec %s of %s: it is running: %w", p.id, c.id, errdefs.ErrFailedPrecondition))
		}
		delete(c.execs, p.id)
		started := p.status == task.Status_STOPPED
		s.mu.Unlock()
		if started {
			<-p.published // the exit goes out before Delete answers
		}
		p.io.wait(ioDrainTimeout)
		p.io.close()
		return s.deleteResponse(p), nil
	}

	s.mu.Lock()
	status := p.status
	if status == task.Status_RUNNING {
		s.mu.Unlock()
		return nil, errdefs.ToGRPC(fmt.Errorf("delete %s: it is running: %w", c.id, errdefs.ErrFailedPrecondition))
	}
	if c.deleting {
		s.mu.Unlock()
		return nil, errdefs.ToGRPC(fmt.Errorf("delete %s: already being deleted: %w", c.id, errdefs.ErrFailedPrecondition))
	}
	c.deleting = true
	s.mu.Unlock()
	if err := c.runc.Delete(s.ctx, c.id, &gorunc.DeleteOpts{Force: true}); err != nil {
		if st, serr := c.runc.State(s.ctx, c.id); serr == nil && st != nil {
			s.mu.Lock()
			c.deleting = false
			s.mu.Unlock()
			return nil, errdefs.ToGRPC(runcErr("runc delete", c, err))
		}
		// runc no longer knows it: it is deleted.
	}
	// A created init was killed by runc delete; its exit comes through
	// the reaper. A stopped one's exit may still be on its way out.
	select {
	case <-p.published:
	case <-time.After(killWaitTime):
		log.GetLogger(ctx).Warnf("no exit of %s after runc delete", c.id)
	}
	p.io.wait(ioDrainTimeout)
	p.io.close()
	if c.cg != nil {
		c.cg.stop()
	}
	if c.rootfs != "" {
		if err := mount.UnmountAll(c.rootfs, 0); err != nil {
			log.GetLogger(ctx).WithError(err).Warnf("unmount the rootfs of %s", c.id)
		}
	}
	s.mu.Lock()
	delete(s.containers, c.id)
	for _, e := range c.execs {
		defer e.io.close()
	}
	s.mu.Unlock()
	resp := s.deleteResponse(p)
	s.publish(topicDelete, &eventsapi.TaskDelete{
		ContainerId: c.id,
		Pid:         resp.GetPid(),
		ExitStatus:  resp.GetExitStatus(),
		ExitedAt:    resp.GetExitedAt(),
	})
	return resp, nil
}

func (s *service) deleteResponse(p *process) *taskapi.DeleteResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &taskapi.DeleteResponse{Pid: uint32(p.pid), ExitStatus: uint32(p.exitStatus)}
	if !p.exitedAt.IsZero() {
		resp.ExitedAt = timestamppb.New(p.exitedAt)
	}
	return resp
}

// State reports a process's state as the daemon asks for it.
func (s *service) State(ctx context.Context, r *taskapi.StateRequest) (*taskapi.StateResponse, error) {
	c, p, err := s.getProcess(r.GetId(), r.GetExecId())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	status := p.status
	if c.paused && status == task.Status_RUNNING {
		status = task.Status_PAUSED
	}
	resp := &taskapi.StateResponse{
		Id:         p.taskID(),
		Bundle:     c.bundle,
		Pid:        uint32(p.pid),
		Status:     status,
		Stdin:      p.s.stdin,
		Stdout:     p.s.stdout,
		Stderr:     p.s.stderr,
		Terminal:   p.s.terminal,
		ExitStatus: uint32(p.exitStatus),
		ExecId:     p.id,
	}
	if !p.exitedAt.IsZero() {
		resp.ExitedAt = timestamppb.New(p.exitedAt)
	}
	return resp, nil
}

// Pids lists the container's processes; an exec's carries its exec id.
func (s *service) Pids(ctx context.Context, r *taskapi.PidsRequest) (*taskapi.PidsResponse, error) {
	c, err := s.get(r.GetId())
	if err != nil {
		return nil, err
	}
	pids, err := c.runc.Ps(s.ctx, c.id)
	if err != nil {
		return nil, errdefs.ToGRPC(runcErr("runc ps", c, err))
	}
	execs := map[int]string{}
	s.mu.Lock()
	for id, e := range c.execs {
		if e.pid > 0 {
			execs[e.pid] = id
		}
	}
	s.mu.Unlock()
	resp := &taskapi.PidsResponse{}
	for _, pid := range pids {
		pi := &task.ProcessInfo{Pid: uint32(pid)}
		if id, ok := execs[pid]; ok {
			b, err := proto.Marshal(&options.ProcessDetails{ExecId: id})
			if err != nil {
				return nil, errdefs.ToGRPC(err)
			}
			pi.Info = &anypb.Any{TypeUrl: string(proto.MessageName(&options.ProcessDetails{})), Value: b}
		}
		resp.Processes = append(resp.Processes, pi)
	}
	return resp, nil
}

// runningInit returns c if its init is running, else FailedPrecondition.
func (s *service) runningInit(id, what string) (*container, error) {
	c, err := s.get(id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := c.init.status; st != task.Status_RUNNING {
		return nil, errdefs.ToGRPC(fmt.Errorf("%s %s: it is %s, not running: %w", what, id,
			strings.ToLower(st.String()), errdefs.ErrFailedPrecondition))
	}
	return c, nil
}

func (s *service) Pause(ctx context.Context, r *taskapi.PauseRequest) (*emptypb.Empty, error) {
	return s.setPaused(r.GetId(), true)
}

func (s *service) Resume(ctx context.Context, r *taskapi.ResumeRequest) (*emptypb.Empty, error) {
	return s.setPaused(r.GetId(), false)
}

// setPaused freezes (runc pause) or thaws (runc resume) a running
// container and publishes /tasks/paused or /tasks/resumed.
func (s *service) setPaused(id string, pause bool) (*emptypb.Empty, error) {
	what, topic, run := "resume", topicResumed, (*gorunc.Runc).Resume
	var event proto.Message = &eventsapi.TaskResumed{ContainerId: id}
	if pause {
		what, topic, run = "pause", topicPaused, (*gorunc.Runc).Pause
		event = &eventsapi.TaskPaused{ContainerId: id}
	}
	c, err := s.runningInit(id, what)
	if err != nil {
		return nil, err
	}
	if err := run(c.runc, s.ctx, c.id); err != nil {
		return nil, errdefs.ToGRPC(runcErr("runc "+what, c, err))
	}
	s.mu.Lock()
	c.paused = pause
	s.mu.Unlock()
	s.publish(topic, event)
	return &emptypb.Empty{}, nil
}

// Checkpoint checkpoints the container with runc and CRIU, which must be
// installed.
func (s *service) Checkpoint(ctx context.Context, r *taskapi.CheckpointTaskRequest) (*emptypb.Empty, error) {
	c, err := s.runningInit(r.GetId(), "checkpoint")
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("criu"); err != nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("checkpoint %s: criu is not installed: %w", c.id, errdefs.ErrNotImplemented))
	}
	o := &options.CheckpointOptions{}
	if a := r.GetOptions(); a != nil && strings.HasSuffix(a.GetTypeUrl(), string(proto.MessageName(o))) {
		if err := proto.Unmarshal(a.GetValue(), o); err != nil {
			return nil, errdefs.ToGRPC(fmt.Errorf("checkpoint %s: options: %w", c.id, errdefs.ErrInvalidArgument))
		}
	}
	image := o.GetImagePath()
	if image == "" {
		image = r.GetPath()
	}
	work := o.GetWorkPath()
	if work == "" {
		work = c.opts.GetCriuWorkPath()
	}
	var actions []gorunc.CheckpointAction
	if !o.GetExit() {
		actions = append(actions, gorunc.LeaveRunning)
	}
	err = c.runc.Checkpoint(s.ctx, c.id, &gorunc.CheckpointOpts{
		ImagePath:                image,
		WorkDir:                  work,
		ParentPath:               o.GetParentPath(),
		AllowOpenTCP:             o.GetOpenTcp(),
		AllowExternalUnixSockets: o.GetExternalUnixSockets(),
		AllowTerminal:            o.GetTerminal(),
		FileLocks:                o.GetFileLocks(),
		EmptyNamespaces:          o.GetEmptyNamespaces(),
		Cgroups:                  gorunc.CgroupMode(o.GetCgroupsMode()),
	}, actions...)
	if err != nil {
		return nil, errdefs.ToGRPC(runcErr("runc checkpoint", c, err))
	}
	return &emptypb.Empty{}, nil
}

var errFinished = errors.New("process already finished")

// Kill signals init through runc (all of the container's processes with
// all), or an exec directly.
func (s *service) Kill(ctx context.Context, r *taskapi.KillRequest) (*emptypb.Empty, error) {
	c, p, err := s.getProcess(r.GetId(), r.GetExecId())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	status, pid := p.status, p.pid
	if p.id != "" {
		// Under the lock, so that the exit cannot be handled meanwhile;
		// the pid is not reused before its exit is.
		switch status {
		case task.Status_CREATED:
			err = fmt.Errorf("kill exec %s of %s: it is not started: %w", p.id, c.id, errdefs.ErrFailedPrecondition)
		case task.Status_STOPPED:
			err = fmt.Errorf("kill exec %s of %s: %w: %w", p.id, c.id, errFinished, errdefs.ErrNotFound)
		default:
			if pid <= 0 { // being started; kill(0) would hit the shim's group
				err = fmt.Errorf("kill exec %s of %s: it is being started: %w", p.id, c.id, errdefs.ErrFailedPrecondition)
				break
			}
			if kerr := unix.Kill(pid, unix.Signal(r.GetSignal())); kerr != nil {
				err = fmt.Errorf("kill exec %s of %s: %w", p.id, c.id, kerr)
				if errors.Is(kerr, unix.ESRCH) {
					err = fmt.Errorf("kill exec %s of %s: %w: %w", p.id, c.id, errFinished, errdefs.ErrNotFound)
				}
			}
		}
		s.mu.Unlock()
		return &emptypb.Empty{}, errdefs.ToGRPC(err)
	}
	s.mu.Unlock()
	if status == task.Status_STOPPED && !r.GetAll() {
		return nil, errdefs.ToGRPC(fmt.Errorf("kill %s: %w: %w", c.id, errFinished, errdefs.ErrNotFound))
	}
	if err := c.runc.Kill(s.ctx, c.id, int(r.GetSignal()), &gorunc.KillOpts{All: r.GetAll()}); err != nil {
		s.mu.Lock()
		stopped := p.status == task.Status_STOPPED
		s.mu.Unlock()
		if stopped {
			return nil, errdefs.ToGRPC(fmt.Errorf("kill %s: %w: %w", c.id, errFinished, errdefs.ErrNotFound))
		}
		return nil, errdefs.ToGRPC(runcErr("runc kill", c, err))
	}
	return &emptypb.Empty{}, nil
}

// Exec adds an exec to the container, to be started by Start.
func (s *service) Exec(ctx context.Context, r *taskapi.ExecProcessRequest) (*emptypb.Empty, error) {
	c, err := s.get(r.GetId())
	if err != nil {
		return nil, err
	}
	// The exec id names files in the bundle (its pid file): a daemon
	// checks it, and so does the shim, whichever daemon started it.
	if err := identifiers.Validate(r.GetExecId()); err != nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("exec in %s: exec id: %w", c.id, err))
	}
	var spec specs.Process
	if err := json.Unmarshal(r.GetSpec().GetValue(), &spec); err != nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("exec %s in %s: process spec: %v: %w", r.GetExecId(), c.id, err, errdefs.ErrInvalidArgument))
	}
	st := stdio{stdin: r.GetStdin(), stdout: r.GetStdout(), stderr: r.GetStderr(), terminal: r.GetTerminal()}
	spec.Terminal = st.terminal
	// Checked before the IO is made, and again before the exec is added.
	if err := s.canExec(c, r.GetExecId()); err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	pio, err := newProcIO(ctx, sharedReaper(), c.id, s.ns, st, int(c.opts.GetIoUid()), int(c.opts.GetIoGid()))
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	p := &process{id: r.GetExecId(), c: c, spec: &spec, s: st, io: pio, status: task.Status_CREATED, exited: make(chan struct{}), published: make(chan struct{})}
	s.mu.Lock()
	if err := s.canExecLocked(c, p.id); err != nil {
		s.mu.Unlock()
		pio.close()
		return nil, errdefs.ToGRPC(err)
	}
	c.execs[p.id] = p
	s.mu.Unlock()
	s.publish(topicExecAdded, &eventsapi.TaskExecAdded{ContainerId: c.id, ExecId: p.id})
	return &emptypb.Empty{}, nil
}

func (s *service) canExec(c *container, execID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.canExecLocked(c, execID)
}

func (s *service) canExecLocked(c *container, execID string) error {
	if _, ok := c.execs[execID]; ok {
		return fmt.Errorf("exec %s in %s: %w", execID, c.id, errdefs.ErrAlreadyExists)
	}
	if c.init.status == task.Status_STOPPED {
		return fmt.Errorf("exec %s in %s: the container is stopped: %w", execID, c.id, errdefs.ErrFailedPrecondition)
	}
	return nil
}

func (s *service) ResizePty(ctx context.Context, r *taskapi.ResizePtyRequest) (*emptypb.Empty, error) {
	_, p, err := s.getProcess(r.GetId(), r.GetExecId())
	if err != nil {
		return nil, err
	}
	if err := p.io.resize(r.GetWidth(), r.GetHeight()); err != nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("resize the terminal of %s: %w", p.taskID(), err))
	}
	return &emptypb.Empty{}, nil
}

func (s *service) CloseIO(ctx context.Context, r *taskapi.CloseIORequest) (*emptypb.Empty, error) {
	_, p, err := s.getProcess(r.GetId(), r.GetExecId())
	if err != nil {
		return nil, err
	}
	if r.GetStdin() {
		p.io.closeStdin()
	}
	return &emptypb.Empty{}, nil
}

// Update changes the container's resources: the Any holds runtime-spec
// LinuxResources as JSON, as containerd's clients send them.
func (s *service) Update(ctx context.Context, r *taskapi.UpdateTaskRequest) (*emptypb.Empty, error) {
	c, err := s.get(r.GetId())
	if err != nil {
		return nil, err
	}
	var res specs.LinuxResources
	if err := json.Unmarshal(r.GetResources().GetValue(), &res); err != nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("update %s: resources: %v: %w", c.id, err, errdefs.ErrInvalidArgument))
	}
	if err := c.runc.Update(s.ctx, c.id, &res); err != nil {
		return nil, errdefs.ToGRPC(runcErr("runc update", c, err))
	}
	return &emptypb.Empty{}, nil
}

// Wait returns once the process has exited.
func (s *service) Wait(ctx context.Context, r *taskapi.WaitRequest) (*taskapi.WaitResponse, error) {
	_, p, err := s.getProcess(r.GetId(), r.GetExecId())
	if err != nil {
		return nil, err
	}
	select {
	case <-p.exited:
	case <-ctx.Done():
		return nil, errdefs.ToGRPC(ctx.Err())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &taskapi.WaitResponse{ExitStatus: uint32(p.exitStatus), ExitedAt: timestamppb.New(p.exitedAt)}, nil
}

func (s *service) Stats(ctx context.Context, r *taskapi.StatsRequest) (*taskapi.StatsResponse, error) {
	c, err := s.get(r.GetId())
	if err != nil {
		return nil, err
	}
	if c.cg == nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("stats of %s: %w", c.id, errNoCgroup))
	}
	a, err := c.cg.stats()
	if err != nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("stats of %s: %w", c.id, err))
	}
	return &taskapi.StatsResponse{Stats: a}, nil
}

func (s *service) Connect(ctx context.Context, r *taskapi.ConnectRequest) (*taskapi.ConnectResponse, error) {
	resp := &taskapi.ConnectResponse{ShimPid: uint32(os.Getpid()), Version: version.Version}
	if c, err := s.get(r.GetId()); err == nil {
		s.mu.Lock()
		resp.TaskPid = uint32(c.init.pid)
		s.mu.Unlock()
	}
	return resp, nil
}

// Shutdown ends the shim once it serves no container; until then it is a
// no-op, since other tasks of the group still use the shim.
func (s *service) Shutdown(ctx context.Context, r *taskapi.ShutdownRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	n := len(s.containers)
	s.mu.Unlock()
	if n == 0 {
		s.shutdown()
	}
	return &emptypb.Empty{}, nil
}

// createSpec is what Create reads of the bundle's config.json: runc reads
// the rest. Decoding the whole of specs.Spec costs ~2ms in a new shim,
// mostly encoding/json learning its many types.
type createSpec struct {
	Linux *struct {
		Namespaces []specs.LinuxNamespace `json:"namespaces"`
	} `json:"linux"`
}

func readSpec(bundle string) (*createSpec, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	var spec createSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("parse %s: %w", filepath.Join(bundle, "config.json"), err)
	}
	return &spec, nil
}

// ownPidNamespace is whether the spec gives the container a new pid
// namespace, whose processes the kernel kills when init dies.
func ownPidNamespace(spec *createSpec) bool {
	if spec.Linux == nil {
		return false
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.PIDNamespace && ns.Path == "" {
			return true
		}
	}
	return false
}
