//go:build integration

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The unit file must be one systemd accepts without a complaint, with what
// keeps containers alive across restarts.
func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile("../contrib/containerd.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "Delegate=yes", "KillMode=process", "ExecStartPre=-/sbin/modprobe overlay", "Restart=always"} {
		if !strings.Contains(string(unit), "\n"+want+"\n") {
			t.Errorf("unit lacks %q", want)
		}
	}
	// verify insists that ExecStart exists; point it at the built daemon.
	path := filepath.Join(t.TempDir(), "containerd.service")
	os.WriteFile(path, []byte(strings.Replace(string(unit), "/usr/local/bin/containerd", daemonBinary, 1)), 0o644)
	// systemd-analyze reports bad directives on stderr but exits 0.
	out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
