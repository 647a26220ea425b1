package sys

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startReaping makes the test binary what the daemon is: a child
// subreaper that reaps its orphans.
func startReaping(t *testing.T) {
	t.Helper()
	if err := SetSubreaper(); err != nil {
		t.Skipf("cannot become a child subreaper: %v", err)
	}
	StartReaper()
}

// procState returns the state letter and parent pid of pid, or ok false
// once the process is gone (reaped).
func procState(pid int) (state string, ppid int, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ppid, _ = strconv.Atoi(fields[1])
	return fields[0], ppid, true
}

// An orphan re-parented to us that exits is reaped, not left a zombie.
func TestReaperReapsOrphans(t *testing.T) {
	startReaping(t)
	// sh starts a grandchild and exits at once, orphaning it.
	// The shell is our own child, so it is started as a managed one: the
	// reaper must not take its exit status from this test.
	cmd := exec.Command("/bin/sh", "-c", "sleep 0.3 </dev/null >/dev/null 2>&1 & echo $!")
	var stdout strings.Builder
	cmd.Stdout = &stdout
	if err := RunManaged(cmd); err != nil {
		t.Fatal(err)
	}
	out := stdout.String()
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("orphan pid %q: %v", out, err)
	}
	if _, ppid, ok := procState(pid); ok && ppid != os.Getpid() {
		t.Fatalf("orphan %d has parent %d, not us (%d)", pid, ppid, os.Getpid())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		state, _, ok := procState(pid)
		if !ok {
			return // reaped
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan %d still there in state %s", pid, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Managed processes keep their exit statuses for their own Wait, however
// busy the reaper is with orphans exiting at the same time.
func TestReaperLeavesManaged(t *testing.T) {
	startReaping(t)
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each leaves an orphan that exits soon, raising SIGCHLD
			// while other managed processes are starting and exiting.
			code := 3 + i%5
			cmd := exec.Command("/bin/sh", "-c", fmt.Sprintf("sleep 0.0%d & exit %d", i%10, code))
			if err := StartManaged(cmd); err != nil {
				errs <- err
				return
			}
			// Wait only once the process has exited and its SIGCHLD has
			// had the reaper scan: the zombie must still be ours.
			time.Sleep(200 * time.Millisecond)
			err := WaitManaged(cmd)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != code {
				errs <- fmt.Errorf("managed process %d: %v, want exit status %d", i, err, code)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// A start that fails registers nothing.
	if err := RunManaged(exec.Command("/nonexistent/binary")); err == nil {
		t.Error("starting a missing binary succeeded")
	}
	reaper.mu.Lock()
	left := len(reaper.managed)
	reaper.mu.Unlock()
	if left != 0 {
		t.Errorf("%d managed pids left registered", left)
	}
}

// An orphan that exits while managed children wait, exited but not yet
// waited for, is reaped once they are: they must not hide it for good.
func TestReaperOrphanBehindManaged(t *testing.T) {
	startReaping(t)
	var managed []*exec.Cmd
	for range 4 {
		cmd := exec.Command("/bin/true")
		if err := StartManaged(cmd); err != nil {
			t.Fatal(err)
		}
		managed = append(managed, cmd)
	}
	cmd := exec.Command("/bin/sh", "-c", "sleep 0.2 </dev/null >/dev/null 2>&1 & echo $!")
	var stdout strings.Builder
	cmd.Stdout = &stdout
	if err := RunManaged(cmd); err != nil {
		t.Fatal(err)
	}
	orphan, err := strconv.Atoi(strings.TrimSpace(stdout.String()))
	if err != nil {
		t.Fatalf("orphan pid %q: %v", stdout.String(), err)
	}
	// Let the orphan exit while the managed ones are zombies still.
	time.Sleep(500 * time.Millisecond)
	for _, cmd := range managed {
		if err := WaitManaged(cmd); err != nil {
			t.Fatalf("managed process: %v", err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		state, _, ok := procState(orphan)
		if !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan %d left in state %s after its managed siblings were waited for", orphan, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
