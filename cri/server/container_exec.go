package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"github.com/llitfkitfk/containerd/cri/config"
	criio "github.com/llitfkitfk/containerd/cri/io"
	"github.com/llitfkitfk/containerd/cri/spec"
	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/cri/streaming"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
	rt "github.com/llitfkitfk/containerd/runtime"
)

const processTypeURL = "types.containerd.io/opencontainers/runtime-spec/1/Process"

// execSyncMaxOutput caps each of an ExecSync's streams: the kubelet's own
// limit on what it reads, and well under the gRPC message limit, so that a
// chatty probe cannot make the answer too large to send.
const execSyncMaxOutput = 16 << 20

// cappedBuffer keeps the first max bytes written and discards the rest
// while still accepting it, so that the process is never blocked on a full
// pipe.
type cappedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		if len(p) > room {
			b.buf.Write(p[:room])
		} else {
			b.buf.Write(p)
		}
	}
	return len(p), nil
}

func (b *cappedBuffer) Close() error { return nil }

// ExecSync runs a command in a running container and returns its output
// and exit code. With a timeout, a command still running after it is
// killed and the call fails with DeadlineExceeded.
func (s *Service) ExecSync(ctx context.Context, r *runtime.ExecSyncRequest) (*runtime.ExecSyncResponse, error) {
	ctx = withNamespace(ctx)
	if len(r.GetCmd()) == 0 {
		return nil, grpcError(fmt.Errorf("exec: cmd is required: %w", errdefs.ErrInvalidArgument))
	}
	c, err := s.containers.Get(r.GetContainerId())
	if err != nil {
		return nil, grpcError(fmt.Errorf("container %q: %w", r.GetContainerId(), err))
	}
	stdout := &cappedBuffer{max: execSyncMaxOutput}
	stderr := &cappedBuffer{max: execSyncMaxOutput}
	code, err := s.execInContainer(ctx, c, execOptions{
		cmd:     r.GetCmd(),
		stdout:  stdout,
		stderr:  stderr,
		timeout: time.Duration(r.GetTimeout()) * time.Second,
	})
	if err != nil {
		return nil, grpcError(fmt.Errorf("exec in container %s: %w", c.Metadata.ID, err))
	}
	return &runtime.ExecSyncResponse{
		Stdout:   stdout.buf.Bytes(),
		Stderr:   stderr.buf.Bytes(),
		ExitCode: int32(code),
	}, nil
}

// execOptions describe an exec: its command and the caller's streams.
type execOptions struct {
	cmd            []string
	stdin          io.Reader
	stdout, stderr io.WriteCloser
	tty            bool
	resize         <-chan remotecommand.TerminalSize
	// timeout kills the process after it (0: none).
	timeout time.Duration
}

// checkRunning refuses execs and attaches to containers that
// are not running.
func checkRunning(c *store.Container) error {
	if st := c.Status().State(); st != runtime.ContainerState_CONTAINER_RUNNING {
		return fmt.Errorf("container %s is in %s state: %w", c.Metadata.ID, stateName(st), errdefs.ErrFailedPrecondition)
	}
	return nil
}

// execInContainer runs opts.cmd in the container with the container's
// process settings and returns its exit code once it has exited and its
// output has been copied out.
func (s *Service) execInContainer(ctx context.Context, c *store.Container, opts execOptions) (uint32, error) {
	id := c.Metadata.ID
	if err := checkRunning(c); err != nil {
		return 0, err
	}
	record, err := s.deps.Containers.Get(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("record of container %s: %w", id, err)
	}
	var base specs.Spec
	if err := json.Unmarshal(record.Spec.GetValue(), &base); err != nil {
		return 0, fmt.Errorf("spec of container %s: %w", id, err)
	}
	proc, err := spec.ExecProcess(&base, opts.cmd, opts.tty)
	if err != nil {
		return 0, err
	}
	procJSON, err := json.Marshal(proc)
	if err != nil {
		return 0, err
	}

	execID := newID()
	eio, err := criio.NewExecIO(execID, filepath.Join(s.containerStateDir(id), "exec"), opts.tty, opts.stdin != nil)
	if err != nil {
		return 0, fmt.Errorf("stdio of exec in container %s: %w", id, err)
	}
	defer eio.Close()

	// Cleanup runs even when the caller has gone.
	bg := context.WithoutCancel(ctx)
	p, err := s.deps.Tasks.Exec(ctx, id, execID, rt.ExecOpts{
		Spec: &anypb.Any{TypeUrl: processTypeURL, Value: procJSON},
		IO:   eio.IO(),
	})
	if err != nil {
		return 0, fmt.Errorf("exec in container %s: %w", id, err)
	}
	defer func() {
		if _, err := p.Delete(bg); err != nil && !errdefs.IsNotFound(err) {
			log.G(ctx).WithError(err).WithField("id", id).WithField("exec", execID).Warn("CRI: deleting an exec")
		}
	}()

	type result struct {
		exit *rt.Exit
		err  error
	}
	exitCh := make(chan result, 1)
	waitCtx, cancelWait := context.WithCancel(bg)
	defer cancelWait()
	// Waiting from before the start, so that a quick exit is not missed.
	go func() {
		exit, err := p.Wait(waitCtx)
		exitCh <- result{exit, err}
	}()

	if _, err := p.Start(ctx); err != nil {
		return 0, fmt.Errorf("starting exec in container %s: %w", id, err)
	}
	if opts.tty && opts.resize != nil {
		go func() {
			for size := range opts.resize {
				if err := p.ResizePty(bg, rt.ConsoleSize{Width: uint32(size.Width), Height: uint32(size.Height)}); err != nil {
					log.G(ctx).WithError(err).WithField("exec", execID).Debug("CRI: resizing an exec's terminal")
				}
			}
		}()
	}
	attachDone := eio.Attach(criio.AttachOptions{
		Stdin:     opts.stdin,
		Stdout:    opts.stdout,
		Stderr:    opts.stderr,
		Tty:       opts.tty,
		StdinOnce: true,
		CloseStdin: func() error {
			return p.CloseIO(bg)
		},
	})

	execCtx := ctx
	if opts.timeout > 0 {
		var cancel context.CancelFunc
		execCtx, cancel = context.WithTimeout(ctx, opts.timeout)
		defer cancel()
	}
	drain := config.Duration(s.config.DrainExecSyncIOTimeout)
	select {
	case <-execCtx.Done():
		if err := p.Kill(bg, uint32(syscall.SIGKILL), false); err != nil && !errdefs.IsNotFound(err) {
			return 0, fmt.Errorf("killing exec %s in container %s: %w", execID, id, err)
		}
		<-exitCh
		waitDrained(attachDone, drain)
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("timeout %v exceeded: %w", opts.timeout, context.DeadlineExceeded)
	case res := <-exitCh:
		if res.err != nil {
			return 0, fmt.Errorf("waiting for exec %s in container %s: %w", execID, id, res.err)
		}
		if !waitDrained(attachDone, drain) {
			return 0, fmt.Errorf("exec %s in container %s: output not drained within drain_exec_sync_io_timeout %v (a child process keeps its output open?)",
				execID, id, drain)
		}
		return res.exit.Status, nil
	}
}

// waitDrained waits for an exec's output to be copied out in full, for at
// most d (0: as long as it takes); false if it was not.
func waitDrained(done <-chan struct{}, d time.Duration) bool {
	if done == nil {
		return true
	}
	if d <= 0 {
		<-done
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// Exec returns the streaming server's URL for an exec in a running
// container.
func (s *Service) Exec(ctx context.Context, r *runtime.ExecRequest) (*runtime.ExecResponse, error) {
	c, err := s.containers.Get(r.GetContainerId())
	if err != nil {
		return nil, grpcError(fmt.Errorf("container %q: %w", r.GetContainerId(), err))
	}
	if err := checkRunning(c); err != nil {
		return nil, grpcError(err)
	}
	if len(r.GetCmd()) == 0 {
		return nil, grpcError(fmt.Errorf("exec: cmd is required: %w", errdefs.ErrInvalidArgument))
	}
	if s.stream == nil {
		return nil, grpcError(fmt.Errorf("no streaming server: %w", errdefs.ErrUnavailable))
	}
	return s.stream.GetExec(r)
}

// Attach returns the streaming server's URL to attach to a running
// container's stdio.
func (s *Service) Attach(ctx context.Context, r *runtime.AttachRequest) (*runtime.AttachResponse, error) {
	c, err := s.containers.Get(r.GetContainerId())
	if err != nil {
		return nil, grpcError(fmt.Errorf("container %q: %w", r.GetContainerId(), err))
	}
	if err := checkRunning(c); err != nil {
		return nil, grpcError(err)
	}
	if s.stream == nil {
		return nil, grpcError(fmt.Errorf("no streaming server: %w", errdefs.ErrUnavailable))
	}
	return s.stream.GetAttach(r)
}

// PortForward returns the streaming server's URL to forward ports into a
// ready sandbox's network namespace.
func (s *Service) PortForward(ctx context.Context, r *runtime.PortForwardRequest) (*runtime.PortForwardResponse, error) {
	sb, err := s.sandboxes.Get(r.GetPodSandboxId())
	if err != nil {
		return nil, grpcError(fmt.Errorf("sandbox %q: %w", r.GetPodSandboxId(), err))
	}
	if sb.Status().State != store.SandboxReady {
		return nil, grpcError(fmt.Errorf("sandbox %s is not ready: %w", sb.Metadata.ID, errdefs.ErrFailedPrecondition))
	}
	if s.stream == nil {
		return nil, grpcError(fmt.Errorf("no streaming server: %w", errdefs.ErrUnavailable))
	}
	return s.stream.GetPortForward(r)
}

// streamRuntime runs what the streaming server's URLs ask for (Exec,
// Attach, PortForward); a type of its own because its method names clash
// with the CRI's.
type streamRuntime struct{ s *Service }

// Exec runs cmd in the container with the client's streams; a non-zero
// exit is an error carrying the code, which the streaming protocol sends
// to the client.
func (r streamRuntime) Exec(ctx context.Context, containerID string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	ctx = withNamespace(ctx)
	c, err := r.s.containers.Get(containerID)
	if err != nil {
		return fmt.Errorf("container %q: %w", containerID, err)
	}
	code, err := r.s.execInContainer(ctx, c, execOptions{
		cmd: cmd, stdin: in, stdout: out, stderr: errw, tty: tty, resize: resize,
	})
	if err != nil {
		return fmt.Errorf("exec in container %s: %w", c.Metadata.ID, err)
	}
	if code != 0 {
		return &utilexec.CodeExitError{
			Err:  fmt.Errorf("command %v in container %s exited with code %d", cmd, c.Metadata.ID, code),
			Code: int(code),
		}
	}
	return nil
}

// Attach connects the client's streams to the container's stdio until
// the container exits or the client goes.
func (r streamRuntime) Attach(ctx context.Context, containerID string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	ctx = withNamespace(ctx)
	c, err := r.s.containers.Get(containerID)
	if err != nil {
		return fmt.Errorf("container %q: %w", containerID, err)
	}
	if err := checkRunning(c); err != nil {
		return err
	}
	cio := containerIO(c)
	if cio == nil {
		return fmt.Errorf("container %s has no stdio to attach to: %w", c.Metadata.ID, errdefs.ErrFailedPrecondition)
	}
	task, err := r.s.deps.Tasks.Get(ctx, c.Metadata.ID)
	if err != nil {
		return fmt.Errorf("task of container %s: %w", c.Metadata.ID, err)
	}
	bg := context.WithoutCancel(ctx)
	if tty && resize != nil {
		go func() {
			for size := range resize {
				if err := task.ResizePty(bg, rt.ConsoleSize{Width: uint32(size.Width), Height: uint32(size.Height)}); err != nil {
					log.G(ctx).WithError(err).WithField("id", c.Metadata.ID).Debug("CRI: resizing a container's terminal")
				}
			}
		}()
	}
	cio.AttachContext(ctx, criio.AttachOptions{
		Stdin:     in,
		Stdout:    out,
		Stderr:    errw,
		Tty:       tty,
		StdinOnce: c.Metadata.Config.GetStdinOnce(),
		CloseStdin: func() error {
			return task.CloseIO(bg)
		},
	})
	return nil
}

// PortForward copies stream to and from port on localhost in the
// sandbox's network namespace.
func (r streamRuntime) PortForward(ctx context.Context, podSandboxID string, port int32, stream io.ReadWriteCloser) error {
	if port <= 0 || port > 65535 {
		return fmt.Errorf("port %d out of range: %w", port, errdefs.ErrInvalidArgument)
	}
	sb, err := r.s.sandboxes.Get(podSandboxID)
	if err != nil {
		return fmt.Errorf("sandbox %q: %w", podSandboxID, err)
	}
	if sb.Status().State != store.SandboxReady {
		return fmt.Errorf("sandbox %s is not ready: %w", sb.Metadata.ID, errdefs.ErrFailedPrecondition)
	}
	return streaming.PortForward(ctx, r.s.sandboxNetNSPath(sb), port, stream)
}
