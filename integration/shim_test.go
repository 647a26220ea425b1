//go:build integration

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// What a runc shim owes its tasks, seen through ctr and the daemon: these
// run with whichever shim is under test (see testutil.ShimUnderTest).

// ctr run -t gives the task a terminal: its stdio is a pseudo-terminal
// the shim copies to and from ctr's.
func TestShimTerminal(t *testing.T) {
	r := newRunner(t, "overlayfs")
	// ctr needs a terminal of its own to pass through; script makes one.
	cmdline := fmt.Sprintf("ctr -a %s -n %s run -t --rm %s term1 ls -l /proc/self/fd/0 /proc/self/fd/1",
		r.d.Address, runNamespace, busyboxImage)
	out, err := exec.Command("script", "-qec", cmdline, "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s\ndaemon log:\n%s", cmdline, err, out, r.d.log)
	}
	if n := strings.Count(string(out), "-> /dev/pts/"); n != 2 {
		t.Fatalf("stdin and stdout of a -t task are not a terminal:\n%s", out)
	}
}

// Output sent to a file:// or binary:// log URI reaches it.
func TestShimLogURIs(t *testing.T) {
	r := newRunner(t, "overlayfs")
	dir := t.TempDir()

	file := filepath.Join(dir, "file.log")
	r.ctr("run", "--rm", "--log-uri", "file://"+file, busyboxImage, "log1", "sh", "-c", "echo out; echo err >&2")
	if data, _ := os.ReadFile(file); !strings.Contains(string(data), "out\n") || !strings.Contains(string(data), "err\n") {
		t.Errorf("file log %s holds %q, want both streams", file, data)
	}

	// A logging binary gets the task's stdout and stderr as fds 3 and 4
	// and says it is ready by closing fd 5.
	logger := filepath.Join(dir, "logger")
	script := fmt.Sprintf("#!/bin/sh\nexec 5>&-\ncat <&3 > %s/$CONTAINER_NAMESPACE-$CONTAINER_ID.out &\ncat <&4 > %s/$CONTAINER_ID.err\nwait\n", dir, dir)
	if err := os.WriteFile(logger, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r.ctr("run", "--rm", "--log-uri", "binary://"+logger, busyboxImage, "log2", "sh", "-c", "echo out; echo err >&2")
	deadline := time.Now().Add(10 * time.Second)
	for {
		o, _ := os.ReadFile(filepath.Join(dir, runNamespace+"-log2.out"))
		e, _ := os.ReadFile(filepath.Join(dir, "log2.err"))
		if string(o) == "out\n" && string(e) == "err\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("binary logger got stdout %q and stderr %q, want \"out\\n\" and \"err\\n\"", o, e)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A container over its memory limit is killed by the kernel; the shim
// reports the OOM and the exit.
func TestShimOOM(t *testing.T) {
	r := newRunner(t, "overlayfs")
	events := r.watchEvents()
	// The shell's string doubles until the cgroup's 32 MiB are gone.
	out, code := r.ctrCode("run", "--rm", "--memory-limit", "33554432", busyboxImage, "oom1",
		"sh", "-c", "x=0123456789abcdef; while true; do x=$x$x; done")
	if code != 137 {
		t.Fatalf("ctr run of a memory eater: exit status %d, want 137 (SIGKILL)\n%s", code, out)
	}
	events.await(t, func(line string) bool {
		return strings.Contains(line, "/tasks/oom") && strings.Contains(line, `"oom1"`)
	}, r.d)
}

// Containers that carry the same group label share one shim, which
// exits once the last of them is deleted.
func TestShimGroup(t *testing.T) {
	r := newRunner(t, "overlayfs")
	const group = "--annotation=io.kubernetes.cri.sandbox-id=pod1"
	r.ctr("run", "-d", group, busyboxImage, "g1", "sleep", "1000")
	r.ctr("run", "-d", group, busyboxImage, "g2", "sleep", "1000")
	r.ctr("run", "-d", busyboxImage, "solo", "sleep", "1000")
	g1, g2, solo := r.awaitStatus("g1", "RUNNING"), r.awaitStatus("g2", "RUNNING"), r.awaitStatus("solo", "RUNNING")
	shim := parentOf(g1.pid)
	if shim <= 1 || parentOf(g2.pid) != shim {
		t.Fatalf("g1 and g2 run under shims %d and %d, want one", shim, parentOf(g2.pid))
	}
	if parentOf(solo.pid) == shim {
		t.Fatal("a container of no group runs under the group's shim")
	}

	r.ctr("tasks", "kill", "-s", "SIGKILL", "g1")
	r.awaitStatus("g1", "STOPPED")
	r.ctr("tasks", "delete", "g1")
	r.ctr("containers", "rm", "g1")
	time.Sleep(200 * time.Millisecond)
	if procState(shim) == "" || procState(g2.pid) == "" {
		t.Fatal("deleting one task of a group ended the group's shim or its other task")
	}
	if out := r.ctr("tasks", "exec", "--exec-id", "e1", "g2", "echo", "still"); out != "still\n" {
		t.Fatalf("exec in g2 after g1's delete: %q", out)
	}

	r.ctr("tasks", "kill", "-s", "SIGKILL", "g2")
	r.awaitStatus("g2", "STOPPED")
	r.ctr("tasks", "delete", "g2")
	deadline := time.Now().Add(10 * time.Second)
	for procState(shim) != "" && procState(shim) != "Z" {
		if time.Now().After(deadline) {
			t.Fatalf("group shim %d still running after its last task's delete", shim)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
