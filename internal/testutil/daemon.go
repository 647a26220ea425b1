package testutil

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// DaemonPaths are where a daemon under test keeps everything: under one
// temporary directory, never the host's /var/lib/containerd or
// /run/containerd.
type DaemonPaths struct {
	Root, State string
	// Address is the gRPC socket; Debug the debug socket, none if empty.
	Address, Debug string
	// Config is the config file's path.
	Config string
}

// NewDaemonPaths lays the paths out under dir, which should be short:
// unix socket paths are limited to 108 bytes.
func NewDaemonPaths(dir string) DaemonPaths {
	return DaemonPaths{
		Root:    filepath.Join(dir, "root"),
		State:   filepath.Join(dir, "state"),
		Address: filepath.Join(dir, "c.sock"),
		Debug:   filepath.Join(dir, "debug.sock"),
		Config:  filepath.Join(dir, "config.toml"),
	}
}

// ConfigText is a config with p's paths and extra TOML, which goes between
// the top-level keys and the tables, so that it may hold either; the
// [grpc] and (with a debug socket) [debug] tables come after it.
func (p DaemonPaths) ConfigText(extra string) string {
	config := fmt.Sprintf("version = 2\nroot = %q\nstate = %q\n", p.Root, p.State) + extra +
		fmt.Sprintf("\n[grpc]\n  address = %q\n", p.Address)
	if p.Debug != "" {
		config += fmt.Sprintf("[debug]\n  address = %q\n  level = \"debug\"\n", p.Debug)
	}
	return config
}

// CheckEffective returns an error unless the effective config of the
// daemon binary with p's config file keeps p's root, state and socket, so
// that a test never starts a daemon on the host's paths. A config the
// daemon refuses passes: it starts nothing anywhere.
func (p DaemonPaths) CheckEffective(binary string) error {
	out, err := exec.Command(binary, "--config", p.Config, "config", "dump").CombinedOutput()
	if err != nil {
		return nil
	}
	for _, want := range []string{
		fmt.Sprintf("root = %q", p.Root),
		fmt.Sprintf("state = %q", p.State),
		fmt.Sprintf("address = %q", p.Address),
	} {
		if !bytes.Contains(out, []byte(want)) {
			return fmt.Errorf("the test's config does not set %s:\n%s", want, out)
		}
	}
	return nil
}

// Process is a started process; Exited is closed once it has exited, and
// WaitErr is then what Wait returned.
type Process struct {
	Cmd     *exec.Cmd
	Exited  chan struct{}
	WaitErr error
}

// StartProcess starts cmd and waits for its exit in the background.
func StartProcess(cmd *exec.Cmd) (*Process, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{Cmd: cmd, Exited: make(chan struct{})}
	go func() {
		p.WaitErr = cmd.Wait()
		close(p.Exited)
	}()
	return p, nil
}

// Stop asks the process to stop with SIGTERM and kills it if it has not
// exited after grace. It reports whether the process exited of itself.
func (p *Process) Stop(grace time.Duration) bool {
	select {
	case <-p.Exited:
		return true
	default:
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.Exited:
		return true
	case <-time.After(grace):
		p.Cmd.Process.Kill()
		<-p.Exited
		return false
	}
}
