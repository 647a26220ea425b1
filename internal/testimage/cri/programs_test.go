package cri

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// build builds the program of directory prog into dir.
func build(t *testing.T, dir, prog string) string {
	t.Helper()
	out := filepath.Join(dir, prog)
	cmd := exec.Command("go", "build", "-o", out, "./"+prog)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", prog, err, b)
	}
	return out
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// The nginx stand-in: it serves, writes its pid file once it does, runs
// under the title critest looks for, keeps its file's name as its
// process name, and exits 0 on SIGTERM.
func TestWebserverAsNginx(t *testing.T) {
	dir := t.TempDir()
	bin := build(t, dir, "webserver")
	nginx := filepath.Join(dir, "nginx")
	if err := os.Rename(bin, nginx); err != nil {
		t.Fatal(err)
	}
	addr, pidfile := freeAddr(t), filepath.Join(dir, "nginx.pid")
	const title = "nginx: master process nginx -g daemon off;"
	var log bytes.Buffer
	cmd := exec.Command(nginx, "-addr", addr, "-pidfile", pidfile, "-name", "nginx", "-title", title)
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	var resp *http.Response
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if resp, err = http.Get("http://" + addr + "/"); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("GET: %v\n%s", err, log.String())
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "nginx works") {
		t.Errorf("GET: %s %q", resp.Status, body)
	}
	pid := cmd.Process.Pid
	if b, err := os.ReadFile(pidfile); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(pid) {
		t.Errorf("pid file: %q, %v; want %d", b, err, pid)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if !bytes.HasPrefix(cmdline, []byte(title+"\x00")) {
		t.Errorf("cmdline %q, want it to start with the title", cmdline)
	}
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "nginx" {
		t.Errorf("process name %q, want nginx (pidof finds it by that)", comm)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit on SIGTERM: %v", err)
	}
	if !strings.Contains(log.String(), "nginx: serving HTTP on") {
		t.Errorf("log %q does not name nginx", log.String())
	}
}

// pause runs until SIGTERM, then exits 0. (Its reaping needs it to be
// pid 1 of a pid namespace, as in a pod; critest's shared-pid specs run
// it so.)
func TestPause(t *testing.T) {
	bin := build(t, t.TempDir(), "pause")
	cmd := exec.Command(bin)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("pause on SIGTERM: %v", err)
	}
}

// procps as pgrep finds processes by name, not itself, and fails when
// none matches; as ipcs it lists the segments' ids.
func TestProcps(t *testing.T) {
	dir := t.TempDir()
	bin := build(t, dir, "procps")
	pgrep, ipcs := filepath.Join(dir, "pgrep"), filepath.Join(dir, "ipcs")
	os.Symlink(bin, pgrep)
	os.Symlink(bin, ipcs)

	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer sleep.Process.Kill()
	out, err := exec.Command(pgrep, "^sleep$").Output()
	if err != nil || !strings.Contains("\n"+string(out), fmt.Sprintf("\n%d\n", sleep.Process.Pid)) {
		t.Errorf("pgrep sleep: %q, %v; want pid %d", out, err, sleep.Process.Pid)
	}
	if out, err := exec.Command(pgrep, "^no-such-process-name$").Output(); err == nil || len(out) != 0 {
		t.Errorf("pgrep of nothing: %q, %v; want exit status 1", out, err)
	}
	if out, err := exec.Command(pgrep, "^pgrep$").Output(); len(out) != 0 {
		t.Errorf("pgrep finds itself: %q, %v", out, err)
	}
	// A segment of this IPC namespace, as critest makes one.
	mk, err := exec.Command("ipcmk", "-M", "4096").Output()
	if err != nil {
		t.Fatalf("ipcmk: %v", err)
	}
	id := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(mk)), "Shared memory id:"))
	defer exec.Command("ipcrm", "-m", id).Run()
	out, err = exec.Command(ipcs, "-m").Output()
	if err != nil || !strings.Contains(string(out), "Shared Memory Segments") || !strings.Contains(string(out), " "+id+" ") {
		t.Errorf("ipcs -m: %q, %v; want segment %s", out, err, id)
	}
}
