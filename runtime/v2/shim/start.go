package shim

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/llitfkitfk/containerd/sys"
	"golang.org/x/sys/unix"
)

// addressFile in the bundle holds the shim's address: containerd 1.6
// reads it to reconnect after a restart, and so does our daemon.
const addressFile = "address"

// schedCoreEnv, set by the daemon (containerd's sched_core option), asks
// for the shim and its containers in a core scheduling domain of their own.
const schedCoreEnv = "SCHED_CORE"

// start is the start command. The daemon runs it in the task's bundle and
// waits for it; it must leave a shim serving the task and print where.
//
// The socket is made here, in the start command, and handed to the
// serving shim as fd 3: the address is printed only once something
// listens on it, so the daemon's first dial cannot find nothing there,
// however slowly the serving shim starts.
func start(m Manager, f *flags, stdin io.Reader, stdout io.Writer) (retErr error) {
	input, err := io.ReadAll(io.LimitReader(stdin, maxStartInput+1))
	if err != nil {
		return fmt.Errorf("read start parameters from stdin: %w", err)
	}
	if len(input) > maxStartInput {
		return fmt.Errorf("start parameters on stdin exceed %d bytes", maxStartInput)
	}
	req, err := parseStartInput(input, f, os.Getenv)
	if err != nil {
		return err
	}
	bundle, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("bundle (working directory): %w", err)
	}
	req.opts.Bundle = bundle

	group, err := m.Group(req.opts)
	if err != nil {
		return fmt.Errorf("group of task %s: %w", f.id, err)
	}
	if group == "" {
		group = f.id
	}
	path, err := socketPath(req.socketDir, req.opts.Address, f.namespace, group)
	if err != nil {
		return err
	}
	address := "unix://" + path
	answer, err := startAnswer(address, req, os.Getenv(maxShimVersionEnv))
	if err != nil {
		return fmt.Errorf("encode start answer: %w", err)
	}

	l, joined, err := claimSocket(path)
	if err != nil {
		return fmt.Errorf("shim socket for group %s: %w", group, err)
	}
	if !joined {
		cmd, err := forkServer(req, group, l)
		if err != nil {
			l.Close() // removes the socket file
			return err
		}
		defer func() {
			if retErr != nil {
				// Leave no shim listening that no daemon knows of.
				cmd.Process.Kill()
				cmd.Wait()
				l.Close()
			}
		}()
		if err := placeServer(m, req.opts, cmd.Process.Pid); err != nil {
			return err
		}
	}
	if err := writeFileAtomic(filepath.Join(bundle, addressFile), []byte(address)); err != nil {
		return fmt.Errorf("write shim address into the bundle: %w", err)
	}
	if _, err := stdout.Write(answer); err != nil {
		return fmt.Errorf("write start answer: %w", err)
	}
	if l != nil {
		// The serving shim has its own copy; ours must not take the
		// socket file with it.
		l.SetUnlinkOnClose(false)
		l.Close()
	}
	// The serving shim is not waited for: this process exits now, and the
	// daemon, a child subreaper, inherits and reaps it.
	return nil
}

// forkServer starts the serving copy of this binary for group, listening
// on l as fd 3, in the bundle, in a session of its own (so that no
// terminal's signals reach it), with stdio on /dev/null (so that it holds
// none of the daemon's pipes). What the daemon gave this start command
// through stdin goes to it through flags and the environment, as older
// daemons give it.
func forkServer(req startRequest, group string, l *net.UnixListener) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("shim binary: %w", err)
	}
	sock, err := l.File()
	if err != nil {
		return nil, fmt.Errorf("shim socket file: %w", err)
	}
	defer sock.Close()
	o := req.opts
	args := []string{"-namespace", o.Namespace, "-id", group, "-address", o.Address, "-publish-binary", o.PublishBinary}
	if o.Debug {
		args = append(args, "-debug")
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = o.Bundle
	cmd.Env = withEnv(os.Environ(), ttrpcAddressEnv, o.TTRPCAddress)
	cmd.ExtraFiles = []*os.File{sock}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if os.Getenv(schedCoreEnv) != "" {
		// A core scheduling domain of its own for the shim, which its
		// containers inherit, so that no other tenant's tasks share a
		// core's SMT siblings with them. The cookie is made for this
		// process group, and the fork, from this thread, inherits it.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := unix.Prctl(unix.PR_SCHED_CORE, unix.PR_SCHED_CORE_CREATE, 0, unix.PR_SCHED_CORE_SCOPE_PROCESS_GROUP, 0); err != nil {
			return nil, fmt.Errorf("enable core scheduling (%s is set): %w", schedCoreEnv, err)
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start serving shim: %w", err)
	}
	return cmd, nil
}

// placeServer puts the serving shim where containerd puts its own: in the
// runtime's shim cgroup (runc's options.shim_cgroup, a path relative to the
// hierarchies' root, on v1 in every controller; containerd wants it to
// exist, we create it where missing), and one step likelier than the
// daemon to be chosen by the OOM killer.
func placeServer(m Manager, opts StartOpts, pid int) error {
	if cg := m.ShimCgroup(opts); cg != "" {
		if err := sys.JoinCgroup(cg, pid); err != nil {
			return fmt.Errorf("place shim in cgroup %s: %w", cg, err)
		}
	}
	score, err := sys.GetOOMScore(os.Getppid())
	if err != nil {
		return fmt.Errorf("read the daemon's OOM score: %w", err)
	}
	if err := sys.SetOOMScore(pid, min(score+1, sys.OOMScoreAdjMax)); err != nil {
		return fmt.Errorf("set the shim's OOM score: %w", err)
	}
	return nil
}

// withEnv returns env with key set to value, or unset for "".
func withEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	if value != "" {
		out = append(out, key+"="+value)
	}
	return out
}

// writeFileAtomic replaces path with data: a reader sees the old file or
// the whole new one, never a part.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
