package server

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/cri/cni"
	"github.com/llitfkitfk/containerd/cri/images"
	"github.com/llitfkitfk/containerd/cri/spec"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/mount"
	ctrdruntime "github.com/llitfkitfk/containerd/runtime"
	"github.com/llitfkitfk/containerd/snapshots"
)

// Fakes of the daemon's services for the sandbox tests: each keeps what
// was done to it so that a test can check that a failure undid it.

type fakeContainers struct {
	mu   sync.Mutex
	recs map[string]containers.Container
}

func (f *fakeContainers) Get(ctx context.Context, id string) (containers.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.recs[id]
	if !ok {
		return c, fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
	}
	return c, nil
}

func (f *fakeContainers) List(ctx context.Context, filters ...string) ([]containers.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []containers.Container
	for _, c := range f.recs {
		out = append(out, c)
	}
	return out, nil
}

func (f *fakeContainers) Create(ctx context.Context, c containers.Container) (containers.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.recs[c.ID]; ok {
		return c, errdefs.ErrAlreadyExists
	}
	c.CreatedAt, c.UpdatedAt = time.Now(), time.Now()
	f.recs[c.ID] = c
	return c, nil
}

// Update replaces the extensions named by "extensions.<name>" fieldpaths,
// the only update the sandbox code makes.
func (f *fakeContainers) Update(ctx context.Context, c containers.Container, fieldpaths ...string) (containers.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rec, ok := f.recs[c.ID]
	if !ok {
		return c, fmt.Errorf("container %s: %w", c.ID, errdefs.ErrNotFound)
	}
	ext := maps.Clone(rec.Extensions)
	for _, p := range fieldpaths {
		name, ok := strings.CutPrefix(p, "extensions.")
		if !ok {
			return c, fmt.Errorf("fieldpath %q: %w", p, errdefs.ErrNotImplemented)
		}
		ext[name] = c.Extensions[name]
	}
	rec.Extensions, rec.UpdatedAt = ext, time.Now()
	f.recs[c.ID] = rec
	return rec, nil
}

func (f *fakeContainers) Delete(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.recs[id]; !ok {
		return errdefs.ErrNotFound
	}
	delete(f.recs, id)
	return nil
}

// fakeSnapshotter keeps active snapshots' parents by key; the methods the
// sandbox code does not use are left to the nil interface.
type fakeSnapshotter struct {
	snapshots.Snapshotter
	mu      sync.Mutex
	parents map[string]string
}

func (f *fakeSnapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.parents[key]; ok {
		return nil, errdefs.ErrAlreadyExists
	}
	f.parents[key] = parent
	return nil, nil
}

func (f *fakeSnapshotter) Mounts(ctx context.Context, key string) ([]mount.Mount, error) {
	return []mount.Mount{{Type: "bind", Source: "/nonexistent"}}, nil
}

func (f *fakeSnapshotter) Remove(ctx context.Context, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.parents[key]; !ok {
		return errdefs.ErrNotFound
	}
	delete(f.parents, key)
	return nil
}

func (f *fakeSnapshotter) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.parents)
}

// fakeRuntime makes fakeTasks; failCreate and failStart make those steps
// fail.
type fakeRuntime struct {
	mu         sync.Mutex
	tasks      map[string]*fakeTask
	nextPid    uint32
	failCreate bool
	failStart  bool
	// exitOnStart makes tasks exit (status 1) as soon as they start.
	exitOnStart bool
	created     []ctrdruntime.CreateOpts
}

func (f *fakeRuntime) ID() string { return "fake" }

func (f *fakeRuntime) Create(ctx context.Context, id string, opts ctrdruntime.CreateOpts) (ctrdruntime.Task, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failCreate {
		return nil, fmt.Errorf("fake create failure: %w", errdefs.ErrUnknown)
	}
	f.created = append(f.created, opts)
	f.nextPid++
	t := &fakeTask{id: id, pid: 1000 + f.nextPid, failStart: f.failStart, exitOnStart: f.exitOnStart, exited: make(chan struct{})}
	f.tasks[id] = t
	return t, nil
}

func (f *fakeRuntime) Get(ctx context.Context, id string) (ctrdruntime.Task, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tasks[id]
	if !ok {
		return nil, fmt.Errorf("task %s: %w", id, errdefs.ErrNotFound)
	}
	return t, nil
}

func (f *fakeRuntime) Tasks(ctx context.Context, all bool) ([]ctrdruntime.Task, error) {
	return nil, nil
}

func (f *fakeRuntime) Delete(ctx context.Context, id string) (*ctrdruntime.Exit, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tasks[id]
	if !ok {
		return nil, errdefs.ErrNotFound
	}
	if t.State0().Status == ctrdruntime.RunningStatus {
		return nil, fmt.Errorf("task %s runs: %w", id, errdefs.ErrFailedPrecondition)
	}
	delete(f.tasks, id)
	return &ctrdruntime.Exit{Status: t.State0().ExitStatus}, nil
}

func (f *fakeRuntime) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.tasks)
}

type fakeTask struct {
	ctrdruntime.Task
	id          string
	pid         uint32
	failStart   bool
	exitOnStart bool

	mu      sync.Mutex
	status  ctrdruntime.Status
	exit    uint32
	exited  chan struct{}
	exitOne sync.Once
}

func (t *fakeTask) ID() string { return t.id }

func (t *fakeTask) State0() ctrdruntime.State {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.status
	if st == 0 {
		st = ctrdruntime.CreatedStatus
	}
	return ctrdruntime.State{Status: st, Pid: t.pid, ExitStatus: t.exit}
}

func (t *fakeTask) State(ctx context.Context) (ctrdruntime.State, error) { return t.State0(), nil }

func (t *fakeTask) PID(ctx context.Context) (uint32, error) { return t.pid, nil }

func (t *fakeTask) Start(ctx context.Context) (uint32, error) {
	if t.failStart {
		return 0, fmt.Errorf("fake start failure: %w", errdefs.ErrUnknown)
	}
	if t.exitOnStart {
		t.exitWith(1)
		return t.pid, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.status = ctrdruntime.RunningStatus
	return t.pid, nil
}

// exitWith ends the task as if its process exited with code.
func (t *fakeTask) exitWith(code uint32) {
	t.mu.Lock()
	t.status, t.exit = ctrdruntime.StoppedStatus, code
	t.mu.Unlock()
	t.exitOne.Do(func() { close(t.exited) })
}

func (t *fakeTask) Kill(ctx context.Context, signal uint32, all bool) error {
	t.exitWith(128 + signal)
	return nil
}

func (t *fakeTask) Wait(ctx context.Context) (*ctrdruntime.Exit, error) {
	select {
	case <-t.exited:
		return &ctrdruntime.Exit{Pid: t.pid, Status: t.State0().ExitStatus, Timestamp: time.Now()}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type fakeImages struct {
	chainID digest.Digest
	err     error
	asked   []string
}

func (f *fakeImages) EnsureImage(ctx context.Context, ref string, auth *runtime.AuthConfig, handler string) (images.Image, error) {
	f.asked = append(f.asked, ref+"@"+handler)
	if f.err != nil {
		return images.Image{}, f.err
	}
	img := images.Image{ID: "sha256:pause", References: []string{ref}, ChainID: f.chainID}
	img.Spec.Config.Labels = map[string]string{"from-image": "yes", "app": "image"}
	return img, nil
}

func (f *fakeImages) Snapshotter(handler string) string { return "overlayfs" }

// fakeCNI hands out addresses and records teardowns.
type fakeCNI struct {
	mu       sync.Mutex
	setups   map[string]string // id -> netns path
	removed  []string
	failWith error
}

func (f *fakeCNI) Status() error { return nil }

func (f *fakeCNI) Setup(ctx context.Context, id, nsPath string, pod *runtime.PodSandboxConfig, handler string) (*cni.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failWith != nil {
		return nil, f.failWith
	}
	f.setups[id] = nsPath
	return &cni.Result{IP: "10.88.0.7", AdditionalIPs: []string{"fd00::7"}, JSON: []byte(`{"fake":true}`)}, nil
}

func (f *fakeCNI) Remove(ctx context.Context, id, nsPath string, pod *runtime.PodSandboxConfig, handler string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, id)
	delete(f.setups, id)
	return nil
}

// fakeSpec stands for spec.Sandbox (written elsewhere): a minimal spec
// that records what it was given.
type fakeSpec struct {
	mu  sync.Mutex
	in  []spec.SandboxInput
	err error
}

func (f *fakeSpec) make(ctx context.Context, in spec.SandboxInput) (*specs.Spec, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.in = append(f.in, in)
	if f.err != nil {
		return nil, f.err
	}
	return &specs.Spec{Version: specs.Version, Hostname: in.Config.GetHostname(), Process: &specs.Process{Args: []string{"/pause"}}}, nil
}
