package server

import (
	"fmt"
	"os/exec"
	goruntime "runtime"
	"sync"
	"syscall"

	"github.com/llitfkitfk/containerd/cri/netns"
)

// usernsHolder is a process that holds a pod's user namespace (and the
// network namespace made in it) until the pause container has joined
// it. It is stopped before it runs anything: it is traced, and a traced
// process stops at its exec.
//
// Its parent is one OS thread, locked for the holder's life: the kernel
// ties both the tracing and the parent-death signal to the thread that
// forked, and a Go thread may end (a goroutine that exits locked ends
// its thread, as netns.New's do). The holder would then be killed early,
// or, untraced, run the daemon's binary.
type usernsHolder struct {
	pid      int
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// path is the user namespace for the pause container's spec, "" for
// none.
func (h *usernsHolder) path() string {
	if h == nil {
		return ""
	}
	return fmt.Sprintf("/proc/%d/ns/user", h.pid)
}

// Close ends the holder; the namespaces live on in the pause container
// (and the network namespace in its mount).
func (h *usernsHolder) Close() {
	if h == nil {
		return
	}
	h.stopOnce.Do(func() { close(h.stop) })
	<-h.done
}

// newUsernsHolder starts a holder in a new user namespace with m's
// mappings and a new network namespace owned by it.
func newUsernsHolder(m *podIDMap) (*usernsHolder, error) {
	h := &usernsHolder{stop: make(chan struct{}), done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		defer close(h.done)
		goruntime.LockOSThread()
		defer goruntime.UnlockOSThread()
		cmd := exec.Command("/proc/self/exe")
		cmd.Args = []string{"cri-userns-holder"}
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: int(m.uid.GetContainerId()), HostID: int(m.uid.GetHostId()), Size: int(m.uid.GetLength())}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: int(m.gid.GetContainerId()), HostID: int(m.gid.GetHostId()), Size: int(m.gid.GetLength())}},
			// Stopped at exec: the daemon's binary never runs in it.
			Ptrace:    true,
			Pdeathsig: syscall.SIGKILL,
		}
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("user namespace for the pod: %w", err)
			return
		}
		h.pid = cmd.Process.Pid
		started <- nil
		<-h.stop
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	if err := <-started; err != nil {
		<-h.done
		return nil, err
	}
	return h, nil
}

// newPodNetNS makes a pod's network namespace. A pod with a user
// namespace of its own gets one owned by that user namespace, which the
// pause container then joins: a network namespace owned by the host's
// user namespace would refuse the pod's root its sysfs (mount EPERM).
// The holder must be closed once the pause container runs.
func newPodNetNS(dir string, m *podIDMap) (*netns.NetNS, *usernsHolder, error) {
	if m == nil {
		ns, err := netns.New(dir)
		return ns, nil, err
	}
	h, err := newUsernsHolder(m)
	if err != nil {
		return nil, nil, err
	}
	ns, err := netns.FromProcess(dir, h.pid)
	if err != nil {
		h.Close()
		return nil, nil, err
	}
	return ns, h, nil
}
