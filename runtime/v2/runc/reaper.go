package runc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"time"

	gorunc "github.com/containerd/go-runc"
	"github.com/llitfkitfk/containerd/runtime/v2/shim"
	"golang.org/x/sys/unix"
)

// The serving shim is a child subreaper: the container processes runc
// starts are reparented to it when runc exits, and so are their orphans.
// Every child must be reaped, and the exit status of each goes to exactly
// one of two kinds of waiter:
//
//   - commands the shim runs and waits for itself: runc (create, start,
//     exec, kill, delete...) through go-runc, and logging binaries. They are
//     started through the reaper (go-runc's ProcessMonitor), which records
//     their pid under the lock the reaping loop holds, before the loop can
//     see them exit; their status goes to their own channel.
//   - everything else: container processes (init and execs) and their
//     orphans. Their exits go, in reaping order, to one handler, the
//     service's, which knows which pid is which process.
//
// The race of the second kind is the service's to close (see
// service.handleExit): `runc exec --detach` returns once the process is
// running, and it may already have exited and been reaped before the
// service has read its pid from the pid file, so the handler may see an
// exit for a pid it does not know yet. The service keeps such exits while
// a start is under way and matches them when it learns the pid.
//
// Whatever else the shim runs once the service exists must be started and
// waited for through go-runc's Monitor (runc.Monitor.Start, then Wait),
// which the service sets to the reaper: exec.Cmd.Wait alone would race
// the reaper for the exit status and lose it to ECHILD.
//
// The handler is never called with the lock held, and never from the
// reaping loop itself: it may run runc (kill --all when init dies), which
// needs the loop to go on reaping. Exits wait for it in an unbounded
// queue, so the loop never blocks on it.

// reaper reaps all children of the shim on SIGCHLD.
type reaper struct {
	mu sync.Mutex
	// cmds are the commands being waited for, by pid.
	cmds map[int]chan gorunc.Exit

	qmu    sync.Mutex
	queue  []gorunc.Exit
	queued chan struct{} // a token when queue went non-empty
}

// newReaper starts reaping. handle gets the exits of children no command
// waits for, one at a time, in the order they were reaped.
func newReaper(handle func(gorunc.Exit)) *reaper {
	r := &reaper{cmds: map[int]chan gorunc.Exit{}, queued: make(chan struct{}, 1)}
	// One pending signal is enough: every pass reaps all that exited.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGCHLD)
	go func() {
		for {
			r.reap()
			<-sigs
		}
	}()
	go func() {
		for range r.queued {
			for {
				r.qmu.Lock()
				if len(r.queue) == 0 {
					r.qmu.Unlock()
					break
				}
				e := r.queue[0]
				r.queue[0] = gorunc.Exit{}
				r.queue = r.queue[1:]
				r.qmu.Unlock()
				handle(e)
			}
		}
	}()
	return r
}

// reap reaps every child that has exited.
func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return // no children, or none has exited
		}
		if !ws.Exited() && !ws.Signaled() {
			continue // stopped or continued: not an exit
		}
		e := gorunc.Exit{Timestamp: time.Now(), Pid: pid, Status: exitStatus(ws)}
		if ch, ok := r.cmds[pid]; ok {
			delete(r.cmds, pid)
			ch <- e // buffered, never blocks
			continue
		}
		r.qmu.Lock()
		r.queue = append(r.queue, e)
		r.qmu.Unlock()
		select {
		case r.queued <- struct{}{}:
		default:
		}
	}
}

// exitStatus is the status the shim reports: the exit code, or 128 plus
// the signal that killed the process, as a shell does.
func exitStatus(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// Start starts cmd, whose exit the returned channel gets. It is go-runc's
// ProcessMonitor, so that runc's own exits do not reach the service.
func (r *reaper) Start(cmd *exec.Cmd) (chan gorunc.Exit, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ch := make(chan gorunc.Exit, 1)
	r.cmds[cmd.Process.Pid] = ch
	return ch, nil
}

// StartLocked is Start: the shim sets no parent-death signal on runc, so
// go-runc never asks for a locked thread.
func (r *reaper) StartLocked(cmd *exec.Cmd) (chan gorunc.Exit, error) {
	return r.Start(cmd)
}

// Wait waits for cmd, started with Start, and returns its exit status.
func (r *reaper) Wait(cmd *exec.Cmd, ch chan gorunc.Exit) (int, error) {
	e := <-ch
	// The process is reaped already, so Wait fails (ECHILD), but it still
	// waits for the goroutines that copy the command's output.
	_ = cmd.Wait()
	return e.Status, nil
}

// RunCommand runs cmd as exec.Cmd.Run does, through the reaper, which
// would otherwise take its exit status: the frame runs the daemon's
// publish binary with it (shim.CommandRunner).
func (s *service) RunCommand(cmd *exec.Cmd) error {
	r := sharedReaper()
	ch, err := r.Start(cmd)
	if err != nil {
		return err
	}
	status, err := r.Wait(cmd, ch)
	if err != nil {
		return err
	}
	if status != 0 {
		return fmt.Errorf("%s: exit status %d", cmd.Path, status)
	}
	return nil
}

var _ shim.CommandRunner = (*service)(nil)
