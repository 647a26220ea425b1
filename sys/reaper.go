package sys

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A child subreaper inherits the orphans of its descendants: the processes
// of a container whose shim died, a shim whose start command exited. They
// must be reaped, or they stay zombies for as long as the daemon runs. But
// reaping with wait4(-1) would also take the exit statuses of the
// processes the daemon starts and waits for itself (exec.Cmd.Wait would
// fail with ECHILD).
//
// So the reaper reaps only children it was not told about. Processes the
// daemon starts and waits for go through StartManaged and WaitManaged,
// which register them under the same lock the reaper holds while it
// looks: it never sees one of them unregistered.
//
// The reaper peeks at exited children with waitid(WNOWAIT), which leaves
// them unreaped, and reaps the first one if it is an orphan. A managed
// child that has exited but is not yet waited for hides the ones behind
// it, so WaitManaged wakes the reaper again once it has reaped its own.

var reaper = struct {
	mu      sync.Mutex
	managed map[int]struct{}
	once    sync.Once
	started atomic.Bool
	wake    chan struct{}
}{managed: map[int]struct{}{}, wake: make(chan struct{}, 1)}

// StartReaper reaps, from now on and on every SIGCHLD, the exited children
// of this process that were not started with StartManaged. Call it once
// the process is a child subreaper; later calls do nothing.
func StartReaper() {
	reaper.once.Do(func() {
		reaper.started.Store(true)
		// One pending signal is enough: every pass reaps all it can.
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, unix.SIGCHLD)
		go func() {
			reapOrphans() // those that exited before we listened
			for {
				select {
				case <-ch:
				case <-reaper.wake:
				}
				reapOrphans()
			}
		}()
	})
}

// Reaping reports whether StartReaper has run: the exited children that
// no caller waits for through WaitManaged are reaped, and nobody else may
// wait for them, since their pids may be reused at once.
func Reaping() bool { return reaper.started.Load() }

// StartManaged starts cmd so that the reaper leaves it to the caller, who
// must call WaitManaged.
func StartManaged(cmd *exec.Cmd) error {
	reaper.mu.Lock()
	defer reaper.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	reaper.managed[cmd.Process.Pid] = struct{}{}
	return nil
}

// WaitManaged waits for cmd, started with StartManaged, as cmd.Wait does.
func WaitManaged(cmd *exec.Cmd) error {
	err := cmd.Wait()
	// The pid is reaped, so it can be no child of ours until reused.
	reaper.mu.Lock()
	delete(reaper.managed, cmd.Process.Pid)
	reaper.mu.Unlock()
	// Orphans that exited meanwhile may have been hidden behind it.
	select {
	case reaper.wake <- struct{}{}:
	default:
	}
	return err
}

// RunManaged is cmd.Run for a process the reaper must leave alone.
func RunManaged(cmd *exec.Cmd) error {
	if err := StartManaged(cmd); err != nil {
		return err
	}
	return WaitManaged(cmd)
}

// reapOrphans reaps exited children that are not managed, until none has
// exited or a managed one comes first. It holds the lock throughout, so a
// managed start cannot come between peeking at a child and reaping it.
func reapOrphans() {
	reaper.mu.Lock()
	defer reaper.mu.Unlock()
	for {
		pid, err := exitedChild()
		if err != nil || pid == 0 {
			return // no children, or none has exited
		}
		if _, ok := reaper.managed[pid]; ok {
			return // its waiter reaps it, then wakes us
		}
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
	}
}

// siginfo is the start of the kernel's siginfo_t as waitid fills it for
// SIGCHLD: the child's pid follows three ints and padding.
type siginfo struct {
	signo, errno, code int32
	_                  int32
	pid                int32
	_                  [108]byte
}

// exitedChild returns the pid of a child that has exited, without reaping
// it, or 0 if none has.
func exitedChild() (int, error) {
	for {
		var info siginfo
		_, _, errno := unix.Syscall6(unix.SYS_WAITID, unix.P_ALL, 0, uintptr(unsafe.Pointer(&info)),
			unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, 0, 0)
		switch errno {
		case 0:
			return int(info.pid), nil
		case unix.EINTR:
			continue
		}
		return 0, errno
	}
}
