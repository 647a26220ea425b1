package sys

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

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
// scans: it never sees one of them unregistered.

var reaper = struct {
	mu      sync.Mutex
	managed map[int]struct{}
	once    sync.Once
}{managed: map[int]struct{}{}}

// StartReaper reaps, from now on and on every SIGCHLD, the exited children
// of this process that were not started with StartManaged. Call it once
// the process is a child subreaper; later calls do nothing.
func StartReaper() {
	reaper.once.Do(func() {
		// One pending signal is enough: every scan looks at all children.
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, unix.SIGCHLD)
		go func() {
			reapOrphans() // those that exited before we listened
			for range ch {
				reapOrphans()
			}
		}()
	})
}

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
	return err
}

// RunManaged is cmd.Run for a process the reaper must leave alone.
func RunManaged(cmd *exec.Cmd) error {
	if err := StartManaged(cmd); err != nil {
		return err
	}
	return WaitManaged(cmd)
}

// reapOrphans reaps every exited child that is not managed. It holds the
// lock throughout, so a managed start cannot come between reading the
// children and reaping them.
func reapOrphans() {
	reaper.mu.Lock()
	defer reaper.mu.Unlock()
	for _, pid := range children() {
		if _, ok := reaper.managed[pid]; ok {
			continue
		}
		var ws unix.WaitStatus
		for {
			// WNOHANG: a child still running is left alone.
			_, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
	}
}

// children lists this process's children, as the kernel's children files
// of each thread do; it falls back to scanning every process's parent
// where the kernel lacks those files.
func children() []int {
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	if len(tasks) == 0 {
		return childrenByParent()
	}
	var pids []int
	for _, f := range tasks {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that has exited
		}
		for _, s := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(s); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

func childrenByParent() []int {
	self := strconv.Itoa(os.Getpid())
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var pids []int
	for _, f := range stats {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// The command name, in parentheses, may hold anything; the parent
		// is the second field after it.
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) > 1 && fields[1] == self {
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}
