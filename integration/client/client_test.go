package client

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/image-spec/identity"

	"github.com/llitfkitfk/containerd/internal/testimage"
)

// testContext is a context in the run's namespace that ends with the test.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), runNamespace), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestVersion checks that the client reads the version the daemon binary
// reports of itself, and the server's UUID through introspection.
func TestVersion(t *testing.T) {
	c := newClient(t)
	ctx := testContext(t)
	out, err := exec.Command(daemonBinary, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	// containerd <package> <version> [<revision>]
	f := strings.Fields(string(out))
	if len(f) < 3 {
		t.Fatalf("%s --version: %q", daemonBinary, out)
	}
	want := containerd.Version{Version: f[2]}
	if len(f) > 3 {
		want.Revision = f[3]
	}
	v, err := c.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v != want {
		t.Fatalf("client read version %+v, the binary says %q", v, out)
	}
	s1, err := c.Server(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := newClient(t).Server(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s1.UUID == "" || s1 != s2 {
		t.Fatalf("server UUIDs %q and %q: want one, not empty", s1.UUID, s2.UUID)
	}
}

// TestNamespaces drives the namespace store: create with labels, list,
// read and change the labels, the errors of a duplicate and a missing
// namespace, delete.
func TestNamespaces(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	ns := c.NamespaceService()
	const name = "client-suite-ns"
	if err := ns.Create(ctx, name, map[string]string{"team": "a", "tier": "1"}); err != nil {
		t.Fatal(err)
	}
	if err := ns.Create(ctx, name, nil); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("creating %s again: %v, want already exists", name, err)
	}
	list, err := ns.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(list, name) {
		t.Fatalf("list %v lacks %s", list, name)
	}
	if err := ns.SetLabel(ctx, name, "team", "b"); err != nil {
		t.Fatal(err)
	}
	if err := ns.SetLabel(ctx, name, "tier", ""); err != nil {
		t.Fatal(err)
	}
	labels, err := ns.Labels(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(labels) != 1 || labels["team"] != "b" {
		t.Fatalf("labels %v, want team=b alone", labels)
	}
	if err := ns.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.Labels(ctx, name); !errdefs.IsNotFound(err) {
		t.Fatalf("labels of a deleted namespace: %v, want not found", err)
	}
	if err := ns.Delete(ctx, name); !errdefs.IsNotFound(err) {
		t.Fatalf("deleting %s again: %v, want not found", name, err)
	}
	list, err = ns.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(list, name) {
		t.Fatalf("list %v still has %s", list, name)
	}
	// A namespaced call without a namespace is refused.
	if _, err := c.ContainerService().List(ctx); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("listing containers without a namespace: %v, want failed precondition", err)
	}
}

// importBusybox writes the busybox image archive and imports it with the
// client under name, checking that the import made that one image.
func importBusybox(t *testing.T, ctx context.Context, c *containerd.Client, name string) containerd.Image {
	t.Helper()
	path := filepath.Join(t.TempDir(), "busybox.tar")
	if err := testimage.WriteBusybox(path, name); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	imgs, err := c.Import(ctx, f)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if len(imgs) != 1 || imgs[0].Name != name {
		t.Fatalf("import made %+v, want the one image %s", imgs, name)
	}
	img, err := c.GetImage(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if img.Target().Digest != imgs[0].Target.Digest {
		t.Fatalf("image %s targets %v, the import said %v", name, img.Target().Digest, imgs[0].Target.Digest)
	}
	return img
}

// TestImageImportUnpackRemove imports the busybox image, unpacks it into
// each snapshotter, reads the unpacked root filesystem through a view, and
// removes the image, after which garbage collection has taken its content
// and snapshots. Each snapshotter's case has a namespace of its own, where
// nothing else holds the image's content.
func TestImageImportUnpackRemove(t *testing.T) {
	busybox, err := os.ReadFile(testimage.BusyboxBinary)
	if err != nil {
		t.Fatal(err)
	}
	for _, sn := range snapshotters {
		t.Run(sn, func(t *testing.T) {
			c := newClient(t)
			ctx := namespaces.WithNamespace(testContext(t), "client-suite-import-"+sn)
			name := "docker.io/library/client-suite-import:test"
			img := importBusybox(t, ctx, c, name)

			if ok, err := img.IsUnpacked(ctx, sn); err != nil || ok {
				t.Fatalf("unpacked into %s before Unpack: %v, %v", sn, ok, err)
			}
			if err := img.Unpack(ctx, sn); err != nil {
				t.Fatalf("unpack into %s: %v", sn, err)
			}
			if ok, err := img.IsUnpacked(ctx, sn); err != nil || !ok {
				t.Fatalf("not unpacked into %s after Unpack: %v, %v", sn, ok, err)
			}
			diffIDs, err := img.RootFS(ctx)
			if err != nil {
				t.Fatal(err)
			}
			chainID := identity.ChainID(diffIDs).String()
			ss := c.SnapshotService(sn)
			info, err := ss.Stat(ctx, chainID)
			if err != nil {
				t.Fatalf("the unpacked layer's snapshot %s: %v", chainID, err)
			}
			if info.Kind != snapshots.KindCommitted {
				t.Fatalf("snapshot %s is %v, want committed", chainID, info.Kind)
			}

			// The layer's files, as a container would see them, through a
			// view that a lease keeps from garbage collection until it is
			// removed.
			lctx, done, err := c.WithLease(ctx)
			if err != nil {
				t.Fatal(err)
			}
			viewKey := "client-suite-view"
			mounts, err := ss.View(lctx, viewKey, chainID)
			if err != nil {
				t.Fatal(err)
			}
			target := t.TempDir()
			if err := mount.All(mounts, target); err != nil {
				t.Fatalf("mount %+v: %v", mounts, err)
			}
			got, readErr := os.ReadFile(filepath.Join(target, "bin", "busybox"))
			link, linkErr := os.Readlink(filepath.Join(target, "bin", "sh"))
			if err := mount.UnmountAll(target, 0); err != nil {
				t.Fatal(err)
			}
			if readErr != nil || !bytes.Equal(got, busybox) {
				t.Fatalf("the view's /bin/busybox is not the image's: %v", readErr)
			}
			if linkErr != nil || link != "busybox" {
				t.Fatalf("the view's /bin/sh links to %q (%v), want busybox", link, linkErr)
			}
			if err := ss.Remove(lctx, viewKey); err != nil {
				t.Fatal(err)
			}
			if err := done(lctx); err != nil {
				t.Fatal(err)
			}

			manifest := img.Target()
			if err := c.ImageService().Delete(ctx, name, images.SynchronousDelete()); err != nil {
				t.Fatal(err)
			}
			if _, err := c.GetImage(ctx, name); !errdefs.IsNotFound(err) {
				t.Fatalf("image after delete: %v, want not found", err)
			}
			if _, err := c.ContentStore().Info(ctx, manifest.Digest); !errdefs.IsNotFound(err) {
				t.Fatalf("the deleted image's manifest after a synchronous delete: %v, want not found", err)
			}
			if _, err := ss.Stat(ctx, chainID); !errdefs.IsNotFound(err) {
				t.Fatalf("the deleted image's snapshot after a synchronous delete: %v, want not found", err)
			}
		})
	}
}

// syncBuffer collects a process's output, written by the client's copy
// goroutine and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// taskEvents is a subscription to the /tasks/ events of the run's
// namespace.
type taskEvents struct {
	ch   <-chan *events.Envelope
	errs <-chan error
}

// readyTopic is the topic of the probe events that tell a subscription is
// in place.
const readyTopic = "/client-suite/ready"

// subscribeTaskEvents subscribes to the task events of the run's
// namespace and returns once the subscription sees events: the daemon
// registers it a moment after the call returns, so probes are published
// until one comes back.
func subscribeTaskEvents(t *testing.T, ctx context.Context, c *containerd.Client) *taskEvents {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	ch, errs := c.Subscribe(ctx,
		fmt.Sprintf(`namespace==%q,topic~="^/tasks/"`, runNamespace),
		fmt.Sprintf(`namespace==%q,topic==%q`, runNamespace, readyTopic))
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(20 * time.Second)
	for {
		if err := c.EventService().Publish(ctx, readyTopic, &apievents.ContainerCreate{ID: "probe"}); err != nil {
			t.Fatalf("publish a probe event: %v", err)
		}
		select {
		case e := <-ch:
			// Task events before the probe's are another test's.
			if e.Topic == readyTopic {
				return &taskEvents{ch: ch, errs: errs}
			}
		case err := <-errs:
			t.Fatalf("subscribe: %v", err)
		case <-tick.C:
		case <-timeout:
			t.Fatal("no probe event came back through the subscription within 20s")
		}
	}
}

// taskEvent is one event of a task, decoded.
type taskEvent struct {
	topic string
	event any
}

// until returns the events of container id up to and including the first
// with topic last.
func (te *taskEvents) until(t *testing.T, id, last string) []taskEvent {
	t.Helper()
	var seen []taskEvent
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e := <-te.ch:
			if e.Topic == readyTopic {
				continue
			}
			v, err := typeurl.UnmarshalAny(e.Event)
			if err != nil {
				t.Fatalf("event %s: %v", e.Topic, err)
			}
			if eventContainer(v) != id {
				continue
			}
			seen = append(seen, taskEvent{e.Topic, v})
			if e.Topic == last {
				return seen
			}
		case err := <-te.errs:
			t.Fatalf("subscription ended: %v", err)
		case <-timeout:
			t.Fatalf("no %s event for %s within 30s; saw %v", last, id, topics(seen))
		}
	}
}

// eventContainer is the container a task event is about.
func eventContainer(v any) string {
	switch e := v.(type) {
	case *apievents.TaskCreate:
		return e.ContainerID
	case *apievents.TaskStart:
		return e.ContainerID
	case *apievents.TaskExit:
		return e.ContainerID
	case *apievents.TaskDelete:
		return e.ContainerID
	case *apievents.TaskExecAdded:
		return e.ContainerID
	case *apievents.TaskExecStarted:
		return e.ContainerID
	}
	return ""
}

func topics(events []taskEvent) []string {
	var s []string
	for _, e := range events {
		s = append(s, e.topic)
	}
	return s
}

// newBusyboxContainer creates container id on a new snapshot of img in
// snapshotter sn, running args with the image's config, and removes it
// and its task, if any is left, when the test ends.
func newBusyboxContainer(t *testing.T, ctx context.Context, c *containerd.Client, img containerd.Image, sn, id string, args ...string) containerd.Container {
	t.Helper()
	ctr, err := c.NewContainer(ctx, id,
		containerd.WithSnapshotter(sn),
		containerd.WithNewSnapshot(id+"-rootfs", img),
		containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs(args...)))
	if err != nil {
		t.Fatalf("create container %s: %v", id, err)
	}
	t.Cleanup(func() {
		ctx := namespaces.WithNamespace(context.Background(), runNamespace)
		if task, err := ctr.Task(ctx, nil); err == nil {
			task.Kill(ctx, syscall.SIGKILL)
			if ch, err := task.Wait(ctx); err == nil {
				select {
				case <-ch:
				case <-time.After(10 * time.Second):
				}
			}
			task.Delete(ctx)
		}
		ctr.Delete(ctx, containerd.WithSnapshotCleanup)
	})
	return ctr
}

// TestContainers imports and unpacks the busybox image into each
// snapshotter and runs containers of it through the client.
func TestContainers(t *testing.T) {
	for _, sn := range snapshotters {
		t.Run(sn, func(t *testing.T) {
			c := newClient(t)
			ctx := testContext(t)
			name := "docker.io/library/client-suite-run-" + sn + ":test"
			img := importBusybox(t, ctx, c, name)
			t.Cleanup(func() {
				c.ImageService().Delete(namespaces.WithNamespace(context.Background(), runNamespace), name, images.SynchronousDelete())
			})
			if err := img.Unpack(ctx, sn); err != nil {
				t.Fatalf("unpack into %s: %v", sn, err)
			}
			t.Run("RunToExit", func(t *testing.T) { testRunToExit(t, c, img, sn) })
			t.Run("ExecAndKill", func(t *testing.T) { testExecAndKill(t, c, img, sn) })
		})
	}
}

// testRunToExit runs a container whose process writes to stdout and
// stderr and exits 7: the task's exit status, output and events, then the
// removal of task, container and snapshot.
func testRunToExit(t *testing.T, c *containerd.Client, img containerd.Image, sn string) {
	ctx := testContext(t)
	id := "client-suite-run-" + sn
	events := subscribeTaskEvents(t, ctx, c)
	ctr := newBusyboxContainer(t, ctx, c, img, sn, id, "sh", "-c", `echo "out $PWD $(id -u)"; echo err >&2; exit 7`)

	var stdout, stderr syncBuffer
	task, err := ctr.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, &stdout, &stderr)))
	if err != nil {
		t.Fatalf("create task: %v", err)
	}
	if task.Pid() == 0 {
		t.Fatal("created task has pid 0")
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("start task: %v", err)
	}
	var status containerd.ExitStatus
	select {
	case status = <-exited:
	case <-ctx.Done():
		t.Fatal("the task did not exit")
	}
	if code, _, err := status.Result(); err != nil || code != 7 {
		t.Fatalf("task exited with %d (%v), want 7", code, err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != containerd.Stopped || st.ExitStatus != 7 {
		t.Fatalf("status of the exited task %+v, want stopped with 7", st)
	}
	deleted, err := task.Delete(ctx)
	if err != nil {
		t.Fatalf("delete task: %v", err)
	}
	if deleted.ExitCode() != 7 {
		t.Fatalf("delete reported exit status %d, want 7", deleted.ExitCode())
	}
	if got := stdout.String(); got != "out / 0\n" {
		t.Fatalf("stdout %q, want %q", got, "out / 0\n")
	}
	if got := stderr.String(); got != "err\n" {
		t.Fatalf("stderr %q, want %q", got, "err\n")
	}

	seen := events.until(t, id, "/tasks/delete")
	if want := []string{"/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"}; !slices.Equal(topics(seen), want) {
		t.Fatalf("task events %v, want %v", topics(seen), want)
	}
	exit := seen[2].event.(*apievents.TaskExit)
	if exit.ExitStatus != 7 || exit.Pid != task.Pid() || exit.ID != id {
		t.Fatalf("exit event %+v, want status 7 of pid %d, process %s", exit, task.Pid(), id)
	}

	if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
		t.Fatalf("delete container: %v", err)
	}
	if _, err := c.LoadContainer(ctx, id); !errdefs.IsNotFound(err) {
		t.Fatalf("container after delete: %v, want not found", err)
	}
	if _, err := c.SnapshotService(sn).Stat(ctx, id+"-rootfs"); !errdefs.IsNotFound(err) {
		t.Fatalf("the container's snapshot after delete: %v, want not found", err)
	}
}

// testExecAndKill runs a long-lived container, execs into it, kills it
// and removes it.
func testExecAndKill(t *testing.T, c *containerd.Client, img containerd.Image, sn string) {
	ctx := testContext(t)
	id := "client-suite-exec-" + sn
	events := subscribeTaskEvents(t, ctx, c)
	ctr := newBusyboxContainer(t, ctx, c, img, sn, id, "sleep", "600")
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatalf("create task: %v", err)
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("start task: %v", err)
	}
	if st, err := task.Status(ctx); err != nil || st.Status != containerd.Running {
		t.Fatalf("status of the started task %+v (%v), want running", st, err)
	}

	spec, err := ctr.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pspec := *spec.Process
	pspec.Args = []string{"sh", "-c", `echo "exec $((6*7))"; cat /etc/passwd; exit 3`}
	var stdout, stderr syncBuffer
	const execID = "exec-1"
	proc, err := task.Exec(ctx, execID, &pspec, cio.NewCreator(cio.WithStreams(nil, &stdout, &stderr)))
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	procExited, err := proc.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Start(ctx); err != nil {
		t.Fatalf("start exec process: %v", err)
	}
	select {
	case st := <-procExited:
		if st.ExitCode() != 3 {
			t.Fatalf("exec process exited with %d (%v), want 3", st.ExitCode(), st.Error())
		}
	case <-ctx.Done():
		t.Fatal("the exec process did not exit")
	}
	if st, err := proc.Delete(ctx); err != nil || st.ExitCode() != 3 {
		t.Fatalf("delete exec process: %+v, %v; want exit status 3", st, err)
	}
	// The exec'd shell ran in the container's root filesystem, not the
	// host's.
	if got, want := stdout.String(), "exec 42\nroot:x:0:0:root:/root:/bin/sh\n"; got != want || stderr.String() != "" {
		t.Fatalf("exec stdout %q, stderr %q; want %q and nothing", got, stderr.String(), want)
	}

	pids, err := task.Pids(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) != 1 || pids[0].Pid != task.Pid() {
		t.Fatalf("task pids %+v, want the init process %d alone", pids, task.Pid())
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatalf("kill: %v", err)
	}
	select {
	case st := <-exited:
		if st.ExitCode() != 128+uint32(syscall.SIGKILL) {
			t.Fatalf("killed task exited with %d, want %d", st.ExitCode(), 128+syscall.SIGKILL)
		}
	case <-ctx.Done():
		t.Fatal("the killed task did not exit")
	}
	if _, err := task.Delete(ctx); err != nil {
		t.Fatalf("delete task: %v", err)
	}

	seen := events.until(t, id, "/tasks/delete")
	want := []string{"/tasks/create", "/tasks/start", "/tasks/exec-added", "/tasks/exec-started", "/tasks/exit", "/tasks/exit", "/tasks/delete"}
	if !slices.Equal(topics(seen), want) {
		t.Fatalf("task events %v, want %v", topics(seen), want)
	}
	if e := seen[4].event.(*apievents.TaskExit); e.ID != execID || e.ExitStatus != 3 {
		t.Fatalf("the exec process's exit event %+v, want %s with 3", e, execID)
	}
	if e := seen[5].event.(*apievents.TaskExit); e.ID != id || e.ExitStatus != 137 {
		t.Fatalf("the init process's exit event %+v, want %s with 137", e, id)
	}

	if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
		t.Fatalf("delete container: %v", err)
	}
}
