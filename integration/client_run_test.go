//go:build integration

package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llitfkitfk/containerd/cio"
	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/oci"
)

// runClient starts a daemon, imports the busybox image through our
// client and unpacks it for overlayfs, and returns the client in
// runNamespace with the image. Whatever tasks and containers a
// test leaves are removed before the daemon stops.
func runClient(t *testing.T) (*client.Client, client.Image) {
	t.Helper()
	if !privateRun {
		t.Skip("running containers needs root, for a private /run")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatal("runc not installed (`make test` installs it)")
	}
	archive := buildBusyboxArchive(t, t.TempDir(), busyboxImage)
	d := newDaemon(t, "")
	sweepAfter(t, d)
	d.start()
	c, err := client.New(d.Address, client.WithDefaultNamespace(runNamespace), client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		removeContainers(t, c)
		c.Close()
	})
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := c.Import(testCtx(t), f); err != nil {
		t.Fatalf("import: %v", err)
	}
	img, err := c.GetImage(testCtx(t), busyboxImage)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Unpack(testCtx(t), "overlayfs"); err != nil {
		t.Fatalf("unpack: %v", err)
	}
	return c, img
}

func removeContainers(t *testing.T, c *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := c.Containers(ctx)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	for _, ctr := range cs {
		if task, err := ctr.Task(ctx, nil); err == nil {
			if _, err := task.Delete(ctx, client.WithProcessKill); err != nil {
				t.Logf("cleanup: task %s: %v", ctr.ID(), err)
			}
		}
		if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil {
			t.Logf("cleanup: container %s: %v", ctr.ID(), err)
		}
	}
}

// newBusybox makes container id from the image, running args.
func newBusybox(t *testing.T, c *client.Client, img client.Image, id string, args ...string) client.Container {
	t.Helper()
	ctr, err := c.NewContainer(testCtx(t), id,
		client.WithNewSnapshot(id, img),
		client.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs(args...)))
	if err != nil {
		t.Fatalf("new container %s: %v", id, err)
	}
	return ctr
}

// syncBuffer is a buffer the stdio copies write while the test reads.
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

// awaitExit is the status from a Wait channel, failing the test if none
// comes within a minute (a missed exit would hang here).
func awaitExit(t *testing.T, exited <-chan client.ExitStatus) client.ExitStatus {
	t.Helper()
	select {
	case s := <-exited:
		if s.Error() != nil {
			t.Fatalf("wait: %v", s.Error())
		}
		return s
	case <-time.After(time.Minute):
		t.Fatal("no exit status within a minute")
	}
	panic("unreachable")
}

// A container runs its command once: the task's stdout and stderr reach
// the caller's streams, Wait (asked before Start) gives the exit code,
// Delete gives it again; deleting the container with its snapshot leaves
// neither.
func TestClientRunTask(t *testing.T) {
	c, img := runClient(t)
	ctx := testCtx(t)
	ctr := newBusybox(t, c, img, "cr1", "sh", "-c", "echo out; echo err >&2; exit 7")

	info, err := ctr.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Image != busyboxImage || info.Snapshotter != client.DefaultSnapshotter || info.SnapshotKey != "cr1" || info.Runtime.Name != client.DefaultRuntime {
		t.Fatalf("container record: %+v", info)
	}
	spec, err := ctr.Spec(ctx)
	if err != nil || strings.Join(spec.Process.Args, " ") != "sh -c echo out; echo err >&2; exit 7" {
		t.Fatalf("spec args: %v, %v", spec, err)
	}

	var stdout, stderr syncBuffer
	task, err := ctr.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, &stdout, &stderr)))
	if err != nil {
		t.Fatal(err)
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := task.Status(ctx); err != nil || st.Status != client.Created {
		t.Fatalf("status before start: %+v, %v", st, err)
	}
	// A task cannot go while the container does.
	if err := ctr.Delete(ctx); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("container delete with a task: %v, want failed precondition", err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if task.Pid() == 0 {
		t.Fatal("started task has no pid")
	}
	if code := awaitExit(t, exited).ExitCode(); code != 7 {
		t.Fatalf("exit code %d, want 7", code)
	}
	st, err := task.Delete(ctx)
	if err != nil || st.ExitCode() != 7 {
		t.Fatalf("delete: %+v, %v", st, err)
	}
	if stdout.String() != "out\n" || stderr.String() != "err\n" {
		t.Fatalf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	if _, err := ctr.Task(ctx, nil); !errdefs.IsNotFound(err) {
		t.Fatalf("task after delete: %v, want not found", err)
	}

	if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		t.Fatal(err)
	}
	if _, err := c.LoadContainer(ctx, "cr1"); !errdefs.IsNotFound(err) {
		t.Fatalf("container after delete: %v, want not found", err)
	}
	if _, err := c.SnapshotService("").Stat(ctx, "cr1"); !errdefs.IsNotFound(err) {
		t.Fatalf("snapshot after delete with cleanup: %v, want not found", err)
	}
}

// A running task takes execs (their output and exit codes reach the
// caller), lists its processes, pauses and resumes, refuses deletion
// while running, and killed with SIGKILL exits 128+9.
func TestClientExecAndKill(t *testing.T) {
	c, img := runClient(t)
	ctx := testCtx(t)
	ctr := newBusybox(t, c, img, "cr2", "sleep", "1000")
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}

	spec, err := ctr.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct {
		id   string
		args []string
		out  string
		code uint32
	}{
		{"e1", []string{"echo", "exec'd"}, "exec'd\n", 0},
		{"e2", []string{"sh", "-c", "echo five; exit 5"}, "five\n", 5},
	} {
		pspec := *spec.Process
		pspec.Args = e.args
		var stdout syncBuffer
		p, err := task.Exec(ctx, e.id, &pspec, cio.NewCreator(cio.WithStreams(nil, &stdout, nil)))
		if err != nil {
			t.Fatal(err)
		}
		pexited, err := p.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if code := awaitExit(t, pexited).ExitCode(); code != e.code {
			t.Errorf("exec %s: exit code %d, want %d", e.id, code, e.code)
		}
		st, err := p.Delete(ctx)
		if err != nil || st.ExitCode() != e.code {
			t.Errorf("exec %s delete: %+v, %v", e.id, st, err)
		}
		if stdout.String() != e.out {
			t.Errorf("exec %s output %q, want %q", e.id, stdout.String(), e.out)
		}
	}
	if _, err := task.Exec(ctx, "", spec.Process, cio.NullIO); !errdefs.IsInvalidArgument(err) {
		t.Errorf("exec without an id: %v, want invalid argument", err)
	}

	pids, err := task.Pids(ctx)
	if err != nil || len(pids) != 1 || pids[0].Pid != task.Pid() {
		t.Fatalf("pids %+v (%v), want the init process %d alone", pids, err, task.Pid())
	}

	if err := task.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := task.Status(ctx); err != nil || st.Status != client.Paused {
		t.Fatalf("status after pause: %+v, %v", st, err)
	}
	if err := task.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := task.Status(ctx); err != nil || st.Status != client.Running {
		t.Fatalf("status after resume: %+v, %v", st, err)
	}
	if m, err := task.Metrics(ctx); err != nil || m.ID != "cr2" || len(m.Data) == 0 {
		t.Fatalf("metrics: %+v, %v", m, err)
	}

	if _, err := task.Delete(ctx); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("delete of a running task: %v, want failed precondition", err)
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := awaitExit(t, exited).ExitCode(); code != 128+9 {
		t.Fatalf("exit code after SIGKILL %d, want 137", code)
	}
	if st, err := task.Delete(ctx); err != nil || st.ExitCode() != 137 {
		t.Fatalf("delete: %+v, %v", st, err)
	}
}

// Processes that exit at once are never missed: each Wait, asked before
// Start, returns the exit, however fast it came.
func TestClientFastExit(t *testing.T) {
	c, img := runClient(t)
	ctx := testCtx(t)
	ctr := newBusybox(t, c, img, "cr3", "sh", "-c", "exit 3")
	for i := 0; i < 5; i++ {
		task, err := ctr.NewTask(ctx, cio.NullIO)
		if err != nil {
			t.Fatal(err)
		}
		exited, err := task.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if code := awaitExit(t, exited).ExitCode(); code != 3 {
			t.Fatalf("run %d: exit code %d, want 3", i, code)
		}
		if _, err := task.Delete(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// Execs too: a running task, and execs that exit at once.
	ctr2 := newBusybox(t, c, img, "cr4", "sleep", "1000")
	task, err := ctr2.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	spec, err := ctr2.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spec.Process.Args = []string{"true"}
	for i := 0; i < 5; i++ {
		p, err := task.Exec(ctx, fmt.Sprintf("x%d", i), spec.Process, cio.NullIO)
		if err != nil {
			t.Fatal(err)
		}
		exited, err := p.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if code := awaitExit(t, exited).ExitCode(); code != 0 {
			t.Fatalf("exec %d: exit code %d", i, code)
		}
		if _, err := p.Delete(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// WithProcessKill stops a running task before deleting it.
	st, err := task.Delete(ctx, client.WithProcessKill)
	if err != nil || st.ExitCode() != 137 {
		t.Fatalf("delete with kill: %+v, %v", st, err)
	}
	if _, err := ctr2.Task(ctx, nil); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("task after delete: %v", err)
	}
}

// A task's stdio outlives the client that made it (as `ctr run -d`
// leaves it): another attaches to its fifos and reads what the task
// writes from then on; deleting the task then removes the fifos. Labels,
// updates and listing of containers go through the same client.
func TestClientAttachAndRecords(t *testing.T) {
	c, img := runClient(t)
	ctx := testCtx(t)
	// The task writes once an exec tells it to, after the attach.
	ctr := newBusybox(t, c, img, "cr5", "sh", "-c", "while [ ! -e /go ]; do sleep 0.05; done; echo late; exit 4")

	fifoDir := t.TempDir()
	first, err := ctr.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, io.Discard, nil), cio.WithFIFODir(fifoDir)))
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(ctx); err != nil {
		t.Fatal(err)
	}
	first.IO().Cancel() // the first client goes, leaving the fifos

	loaded, err := c.LoadContainer(ctx, "cr5")
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	task, err := loaded.Task(ctx, cio.NewAttach(cio.WithStreams(nil, &out, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if task.Pid() != first.Pid() {
		t.Fatalf("attached task pid %d, started %d", task.Pid(), first.Pid())
	}
	exited, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := loaded.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spec.Process.Args = []string{"sh", "-c", "touch /go"}
	p, err := task.Exec(ctx, "go", spec.Process, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if code := awaitExit(t, exited).ExitCode(); code != 4 {
		t.Fatalf("exit code %d, want 4", code)
	}
	if _, err := task.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if out.String() != "late\n" {
		t.Fatalf("attached stdout %q", out.String())
	}
	if left, _ := filepath.Glob(filepath.Join(fifoDir, "*")); len(left) > 0 {
		t.Errorf("fifos left after the attached task's delete: %v", left)
	}

	labels, err := ctr.SetLabels(ctx, map[string]string{"a": "1", "b": "2"})
	if err != nil || labels["a"] != "1" || labels["b"] != "2" {
		t.Fatalf("set labels: %v, %v", labels, err)
	}
	if labels, err = ctr.SetLabels(ctx, map[string]string{"a": ""}); err != nil || labels["a"] != "" || labels["b"] != "2" {
		t.Fatalf("clear label: %v, %v", labels, err)
	}
	if err := ctr.Update(ctx, func(_ context.Context, _ *client.Client, rec *containers.Container) error {
		rec.Image = "other"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	info, err := ctr.Info(ctx)
	if err != nil || info.Image != "other" || info.Labels["b"] != "2" {
		t.Fatalf("after update: %+v, %v", info, err)
	}
	newBusybox(t, c, img, "cr6", "true")
	list, err := c.Containers(ctx, "labels.b==2")
	if err != nil || len(list) != 1 || list[0].ID() != "cr5" {
		t.Fatalf("containers with label b=2: %v, %v", list, err)
	}
	if all, err := c.Containers(ctx); err != nil || len(all) != 2 {
		t.Fatalf("containers: %v, %v", all, err)
	}
}
