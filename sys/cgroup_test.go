package sys

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestJoinCgroup(t *testing.T) {
	// Managed, so that a reaper started by another test leaves it alone.
	cmd := exec.Command("sleep", "30")
	if err := StartManaged(cmd); err != nil {
		t.Fatal(err)
	}
	defer WaitManaged(cmd)
	defer cmd.Process.Kill()

	path := "/containerd-test-" + filepath.Base(t.TempDir())
	if err := JoinCgroup(path, cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), path) {
		t.Fatalf("process is not in %s:\n%s", path, b)
	}
	cmd.Process.Kill()
	WaitManaged(cmd)
	// Leave no cgroups behind: remove the directories, now empty.
	filepath.Walk(cgroupRoot, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() && strings.HasSuffix(p, path) {
			os.Remove(p)
		}
		return nil
	})
	if err := JoinCgroup("/", cmd.Process.Pid); err == nil {
		t.Fatal("joining the root cgroup by a config path was accepted")
	}
}
