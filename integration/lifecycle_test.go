//go:build integration

package integration

import (
	"context"
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

func TestSIGTERMStopsCleanly(t *testing.T) {
	d := newDaemon(t, "")
	d.start()
	d.ctr("namespaces", "create", "kept")
	for _, sock := range []string{d.Address, d.Address + ".ttrpc", d.Debug} {
		fi, err := os.Stat(sock)
		if err != nil || fi.Mode()&os.ModeSocket == 0 {
			t.Fatalf("%s is not a socket while serving: %v", sock, err)
		}
		if fi.Mode().Perm() != 0o660 {
			t.Errorf("%s has mode %v, want 0660", sock, fi.Mode().Perm())
		}
	}
	d.signal(syscall.SIGTERM)
	if code := d.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM\n%s", code, d.log)
	}
	for _, sock := range []string{d.Address, d.Address + ".ttrpc", d.Debug} {
		if _, err := os.Stat(sock); !os.IsNotExist(err) {
			t.Errorf("%s left behind after SIGTERM (%v)", sock, err)
		}
	}
	// What was written before the stop is there after a restart.
	d2 := d.restart()
	if out := d2.ctr("namespaces", "ls", "-q"); !strings.Contains(out, "kept") {
		t.Fatalf("namespace lost across restart:\n%s", out)
	}
}

// A second daemon on the root, the state directory or a socket of a running
// one is refused before it loads any plugin, naming what is busy, rather
// than after waiting out bolt's file locks; the first one keeps serving.
func TestSecondDaemonRefusedAtOnce(t *testing.T) {
	first := newDaemon(t, "")
	first.start()
	for _, tc := range []struct {
		name  string
		share func(d *daemon)
		extra string
		want  string
	}{
		{name: "all paths", share: func(d *daemon) {
			d.Root, d.State, d.Address, d.Debug = first.Root, first.State, first.Address, first.Debug
		}, want: first.Address + ": socket is in use"},
		{name: "root", share: func(d *daemon) { d.Root = first.Root },
			want: "root " + first.Root + " is in use by another daemon"},
		{name: "state", share: func(d *daemon) { d.State = first.State },
			want: "state " + first.State + " is in use by another daemon"},
		{name: "grpc socket", share: func(d *daemon) { d.Address = first.Address },
			want: first.Address + ": socket is in use"},
		{name: "ttrpc socket", extra: fmt.Sprintf("[ttrpc]\n  address = %q\n", first.Address+".ttrpc"),
			want: first.Address + ".ttrpc: socket is in use"},
		{name: "debug socket", share: func(d *daemon) { d.Debug = first.Debug },
			want: first.Debug + ": socket is in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			second := newDaemon(t, "")
			if tc.share != nil {
				tc.share(second)
			}
			second.writeConfig(tc.extra)
			start := time.Now()
			second.startNoWait()
			code := second.wait(30 * time.Second)
			// The bound: a refusal takes about 40ms, one bolt
			// lock timeout 5s (and there were three). That no plugin was
			// loaded, checked below, is what makes it fast.
			if took := time.Since(start); took > time.Second {
				t.Errorf("refusal took %v, as if waiting on a lock", took)
			}
			if code == 0 {
				t.Fatalf("second daemon exited 0\n%s", second.log)
			}
			if !strings.Contains(second.log.String(), tc.want) {
				t.Errorf("second daemon's error does not say %q:\n%s", tc.want, second.log)
			}
			if strings.Contains(second.log.String(), "loading plugin") {
				t.Errorf("second daemon loaded plugins before it gave up:\n%s", second.log)
			}
			// The first one is untouched.
			first.ctr("version")
			for _, sock := range []string{first.Address + ".ttrpc", first.Debug} {
				if !dialUnix(sock) {
					t.Errorf("the first daemon no longer answers on %s", sock)
				}
			}
		})
	}
}

// With no [debug] section there is no debug listener, as in containerd 1.6
// and 2.x, so daemons on paths of their own run side by side.
func TestTwoDaemonsWithoutDebugSection(t *testing.T) {
	var daemons []*daemon
	for i := 0; i < 2; i++ {
		d := newDaemon(t, "")
		d.Debug = ""
		d.writeConfig("")
		d.start()
		daemons = append(daemons, d)
	}
	for _, d := range daemons {
		d.ctr("version")
		if strings.Contains(d.log.String(), "module=containerd/debug") {
			t.Errorf("a debug listener was opened:\n%s", d.log)
		}
	}
}

func TestStaleSocketIsReplaced(t *testing.T) {
	d := newDaemon(t, "")
	os.MkdirAll(filepath.Dir(d.Address), 0o711)
	l, err := net.Listen("unix", d.Address)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // as after a kill -9: the file stays, nobody answers
	d.start()
}

func TestMalformedConfigExitsWithError(t *testing.T) {
	d := newDaemon(t, "[ttrpc]\n  uid = \"root\"\n")
	d.startNoWait()
	if code := d.wait(10 * time.Second); code != 1 {
		t.Fatalf("exit status %d, want 1\n%s", code, d.log)
	}
	for _, want := range []string{d.Config, "line 5", "uid"} {
		if !strings.Contains(d.log.String(), want) {
			t.Errorf("error output lacks %q:\n%s", want, d.log)
		}
	}
}

// The distribution's own config names plugins this daemon lacks (CRI);
// it must start, and say what it ignored.
func TestDistributionConfigStarts(t *testing.T) {
	d := newDaemon(t, `
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
`)
	d.start()
	if !strings.Contains(d.log.String(), `io.containerd.grpc.v1.cri`) {
		t.Errorf("unknown plugin section not reported:\n%s", d.log)
	}
}

func TestConfigDefaultRoundTrip(t *testing.T) {
	def, err := exec.Command(daemonBinary, "config", "default").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"version = 2", `root = "/var/lib/containerd"`, `address = "/run/containerd/containerd.sock"`} {
		if !strings.Contains(string(def), want) {
			t.Errorf("config default lacks %q", want)
		}
	}
	path := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(path, def, 0o644)
	dump, err := exec.Command(daemonBinary, "--config", path, "config", "dump").CombinedOutput()
	if err != nil {
		t.Fatalf("config dump: %v\n%s", err, dump)
	}
	if string(dump) != string(def) {
		t.Fatalf("default config does not load back unchanged:\n--- default\n%s\n--- dump\n%s", def, dump)
	}
	// Flags show in the dump.
	dump, _ = exec.Command(daemonBinary, "--config", path, "--root", "/elsewhere", "config", "dump").Output()
	if !strings.Contains(string(dump), `root = "/elsewhere"`) {
		t.Errorf("dump does not show the --root flag:\n%s", dump)
	}
}

func TestVersionFlag(t *testing.T) {
	out, err := exec.Command(daemonBinary, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	// containerd PACKAGE VERSION [REVISION]; `make` sets the revision.
	if len(f) < 3 || f[0] != "containerd" || f[1] != "github.com/llitfkitfk/containerd" {
		t.Fatalf("--version printed %q", out)
	}
}

func TestSIGUSR1DumpsStacks(t *testing.T) {
	d := newDaemon(t, "")
	d.start()
	d.signal(syscall.SIGUSR1)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.log.String(), "goroutine stack dump") {
		if time.Now().After(deadline) {
			t.Fatalf("no stack dump in the log\n%s", d.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.ctr("version") // and it keeps serving
}

func TestSystemdNotify(t *testing.T) {
	d := newDaemon(t, "")
	path := filepath.Join(d.dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	d.start("NOTIFY_SOCKET=" + path)
	read := func() string {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 128)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	if got := read(); got != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	d.signal(syscall.SIGTERM)
	if got := read(); got != "STOPPING=1" {
		t.Fatalf("notification on stop %q, want STOPPING=1", got)
	}
	d.wait(15 * time.Second)
}

func TestMetricsEndpoint(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	d := newDaemon(t, "[metrics]\n  address = \""+addr+"\"\n")
	d.start()
	d.ctr("version")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	want := `grpc_server_handled_total{grpc_code="OK",grpc_method="Version",grpc_service="containerd.services.version.v1.Version",grpc_type="unary"}`
	if !strings.Contains(string(body), want) {
		t.Fatalf("metrics lack %s", want)
	}
}

func TestOOMScoreApplied(t *testing.T) {
	// Raising the score needs no privilege, so this holds in any sandbox.
	d := newDaemon(t, "oom_score = 500\n")
	d.start()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(d.Cmd.Process.Pid), "oom_score_adj"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(b)) != "500" {
		t.Fatalf("oom_score_adj = %s, want 500", b)
	}
}

// [cgroup] path places the daemon, and so the shims it starts, in the
// cgroup the operator names.
func TestCgroupPathJoined(t *testing.T) {
	path := "/containerd-it-" + strconv.Itoa(os.Getpid())
	d := newDaemon(t, "[cgroup]\n  path = \""+path+"\"\n")
	d.start()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(d.Cmd.Process.Pid), "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	d.kill()
	defer func() {
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + path)
		for _, dir := range append(dirs, "/sys/fs/cgroup"+path) {
			os.Remove(dir)
		}
	}()
	if !strings.Contains(string(b), path) {
		t.Fatalf("daemon is not in cgroup %s:\n%s", path, b)
	}
}
