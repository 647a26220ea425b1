package testutil

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// A daemon serving the CRI for critest and crictl: this project's
// ($CONTAINERD_BINARY) or, with CRI_DAEMON=containerd2, containerd 2.x's
// own (bin/containerd2, built by `make test-deps`), which is the reference
// the harness is checked against. Both read the same version 2 config
// (containerd 2.x migrates it), with every path under one temporary
// directory; runc and the CNI plugins are the ones script/cri-deps.sh
// builds into bin/cri. Run it in the namespaces of CRIIsolate.

// CRIDaemonEnv chooses the daemon: "containerd2" for containerd 2.x's;
// anything else (or unset) for this project's.
const CRIDaemonEnv = "CRI_DAEMON"

// CRISubnet is the pods' subnet on the test bridge. The network namespace
// of CRIIsolate is the run's own, so it clashes with nothing.
const CRISubnet = "10.88.0.0/16"

// CRIBridge is the test network's bridge, in CRIIsolate's namespace.
const CRIBridge = "cri0"

// CRIDaemon is a daemon under test and its files.
type CRIDaemon struct {
	// Name is "containerd2" or "ours".
	Name string
	// Binary is the daemon; ShimDir holds the containerd-shim-runc-v2 it
	// runs, put first on its PATH.
	Binary, ShimDir string
	Paths           DaemonPaths
	// Endpoint is the CRI endpoint for critest and crictl: unix://socket.
	Endpoint string
	// CNIConfDir, CNIBinDir, RegistryConfigPath and LogDir are the CRI
	// section's directories (LogDir holds the daemon's output and the
	// pods' logs of the crictl tests).
	CNIConfDir, CNIBinDir, RegistryConfigPath, LogDir string
	// NRISocket is where the NRI plugin listens for NRI plugins.
	NRISocket string
	// Runc and Crictl are the binaries of bin/cri.
	Runc, CrictlBinary string

	proc    *Process
	logFile *os.File
	starts  int
}

// CRIBinDir is where script/cri-deps.sh puts critest, crictl, runc and
// the CNI plugins.
func CRIBinDir(repoRoot string) string { return filepath.Join(repoRoot, "bin", "cri") }

// NewCRIDaemon lays a daemon out under dir (short: socket paths are
// limited to 108 bytes): its config, a conflist of the bridge, host-local
// (its leases kept under dir) and portmap plugins, and hosts.toml mirrors
// to reg. The daemon is chosen by $CRI_DAEMON (see CRIDaemonEnv); this
// project's is $CONTAINERD_BINARY, or bin/containerd.
func NewCRIDaemon(repoRoot, dir string, reg *Registry) (*CRIDaemon, error) {
	bin := CRIBinDir(repoRoot)
	d := &CRIDaemon{
		Paths:              NewDaemonPaths(dir),
		CNIConfDir:         filepath.Join(dir, "cni-conf"),
		CNIBinDir:          filepath.Join(bin, "cni"),
		RegistryConfigPath: filepath.Join(dir, "certs.d"),
		LogDir:             filepath.Join(dir, "log"),
		NRISocket:          filepath.Join(dir, "nri.sock"),
		Runc:               filepath.Join(bin, "runc"),
		CrictlBinary:       filepath.Join(bin, "crictl"),
	}
	d.Paths.Debug = ""
	d.Endpoint = "unix://" + d.Paths.Address
	if os.Getenv(CRIDaemonEnv) == "containerd2" {
		d.Name = "containerd2"
		d.Binary = filepath.Join(repoRoot, "bin", "containerd2", "containerd")
		d.ShimDir = filepath.Dir(d.Binary)
	} else {
		d.Name = "ours"
		d.Binary = os.Getenv("CONTAINERD_BINARY")
		if d.Binary == "" {
			d.Binary = filepath.Join(repoRoot, "bin", "containerd")
		}
		shim, err := ShimUnderTest(d.Binary, repoRoot)
		if err != nil {
			return nil, err
		}
		d.ShimDir = filepath.Join(dir, "shim-bin")
		if err := ShimDir(d.ShimDir, shim); err != nil {
			return nil, err
		}
	}
	for _, f := range []string{d.Binary, d.Runc, d.CrictlBinary, filepath.Join(d.CNIBinDir, "bridge")} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("the CRI tests need %s (`make cri-deps` builds bin/cri; `make build` the daemon): %w", f, err)
		}
	}
	// The containers of pods in user namespaces run as ids that must
	// reach their rootfs under the state directory: search permission
	// for all, as containerd's own /run/containerd has it.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	for _, dir := range []string{d.CNIConfDir, d.RegistryConfigPath, d.LogDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(d.CNIConfDir, "10-cri-test.conflist"), []byte(CRIConflist("cri-test", filepath.Join(dir, "cni-ipam"))), 0o644); err != nil {
		return nil, err
	}
	if err := WriteCRIHosts(d.RegistryConfigPath, reg); err != nil {
		return nil, err
	}
	if err := os.WriteFile(d.Paths.Config, []byte(d.configText()), 0o644); err != nil {
		return nil, err
	}
	crictlConfig := fmt.Sprintf("runtime-endpoint: %s\nimage-endpoint: %s\ntimeout: 60\n", d.Endpoint, d.Endpoint)
	if err := os.WriteFile(d.crictlConfig(), []byte(crictlConfig), 0o644); err != nil {
		return nil, err
	}
	return d, nil
}

// CRIConflist is a CNI network list named name for pods: a bridge
// (CRIBridge) that is their gateway, so that the host reaches pod IPs,
// host-local addresses from CRISubnet with their leases under ipamDir, and
// portmap for hostPorts (critest reaches them on 127.0.0.1). The CRI adds
// the loopback plugin itself.
func CRIConflist(name, ipamDir string) string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %q,
        "ranges": [[{"subnet": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, name, CRIBridge, ipamDir, CRISubnet)
}

// configText is the daemon's config: containerd 1.x's version 2 layout,
// which this project's daemon reads and containerd 2.x migrates.
//   - sandbox_image: the local pause stand-in;
//   - restrict_oom_score_adj: this host does not let a process lower its
//     oom_score_adj, which the default spec of a pod would do;
//   - stream_server_port 0: a free port, so runs do not collide;
//   - runc: bin/cri/runc (1.4, with seccomp), not the distribution's 1.1.
func (d *CRIDaemon) configText() string {
	const cri = `plugins."io.containerd.grpc.v1.cri"`
	var b strings.Builder
	fmt.Fprintf(&b, "[plugins.\"io.containerd.internal.v1.opt\"]\n  path = %q\n\n", filepath.Join(d.Paths.Root, "opt"))
	// NRI: its socket, and no plugins from the host's directories.
	fmt.Fprintf(&b, "[plugins.\"io.containerd.nri.v1.nri\"]\n  disable = false\n  socket_path = %q\n", d.NRISocket)
	fmt.Fprintf(&b, "  plugin_path = %q\n  plugin_config_path = %q\n", filepath.Join(d.Paths.Root, "nri-plugins"), filepath.Join(d.Paths.Root, "nri-conf"))
	// critest's synchronization specs hold a new plugin's Synchronize
	// for 2s on purpose, which is exactly the default request timeout:
	// the plugin would be dropped (and the spec skip itself) about half
	// the time. An operator with slow plugins raises it the same way.
	fmt.Fprintf(&b, "  plugin_request_timeout = \"10s\"\n\n")
	fmt.Fprintf(&b, "[%s]\n  sandbox_image = %q\n  restrict_oom_score_adj = true\n", cri, CRIPauseImage)
	fmt.Fprintf(&b, "  stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n")
	fmt.Fprintf(&b, "[%s.containerd]\n  default_runtime_name = \"runc\"\n", cri)
	fmt.Fprintf(&b, "[%s.containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n", cri)
	fmt.Fprintf(&b, "[%s.containerd.runtimes.runc.options]\n  BinaryName = %q\n", cri, d.Runc)
	fmt.Fprintf(&b, "[%s.cni]\n  bin_dir = %q\n  conf_dir = %q\n", cri, d.CNIBinDir, d.CNIConfDir)
	fmt.Fprintf(&b, "[%s.registry]\n  config_path = %q\n", cri, d.RegistryConfigPath)
	return d.Paths.ConfigText("") + "\n" + b.String()
}

// Start starts the daemon (again, after Kill or Stop) and waits until its
// socket answers. Its output goes to LogDir/daemon-<n>.log.
func (d *CRIDaemon) Start() error {
	if err := d.checkEffective(); err != nil {
		return err
	}
	d.starts++
	f, err := os.Create(filepath.Join(d.LogDir, fmt.Sprintf("daemon-%d.log", d.starts)))
	if err != nil {
		return err
	}
	d.logFile = f
	cmd := exec.Command(d.Binary, "--config", d.Paths.Config)
	cmd.Stdout, cmd.Stderr = f, f
	// containerd 2.x looks a shim up in its working directory first.
	cmd.Dir = d.ShimDir
	cmd.Env = append(os.Environ(), "PATH="+d.ShimDir+":"+os.Getenv("PATH"))
	if d.proc, err = StartProcess(cmd); err != nil {
		return fmt.Errorf("start %s: %w", d.Binary, err)
	}
	if err := WaitSocket(d.Paths.Address, 30*time.Second, d.proc.Exited); err != nil {
		return fmt.Errorf("%w\n%s", err, d.Log())
	}
	// The CRI plugin answers once it is up; its runtime status tells.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, stderr, code, err := d.Crictl("info")
		if err == nil && code == 0 {
			return nil
		}
		// Not a daemon still starting: one without the CRI.
		if strings.Contains(stderr, "code = Unimplemented") {
			return fmt.Errorf("%s serves no CRI runtime service: %s", d.Binary, stderr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("crictl info against %s: %s %v\n%s", d.Endpoint, stderr, err, d.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkEffective fails unless the daemon's effective config keeps its
// root, state and socket under the test's directory, as
// DaemonPaths.CheckEffective does, but for either daemon: containerd 2.x
// dumps its config with single-quoted strings.
func (d *CRIDaemon) checkEffective() error {
	out, err := exec.Command(d.Binary, "--config", d.Paths.Config, "config", "dump").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s config dump: %v\n%s", d.Binary, err, out)
	}
	for _, kv := range [][2]string{{"root", d.Paths.Root}, {"state", d.Paths.State}, {"address", d.Paths.Address}} {
		if !bytes.Contains(out, []byte(fmt.Sprintf("%s = %q", kv[0], kv[1]))) &&
			!bytes.Contains(out, []byte(fmt.Sprintf("%s = '%s'", kv[0], kv[1]))) {
			return fmt.Errorf("the effective config of %s does not set %s = %s:\n%s", d.Binary, kv[0], kv[1], out)
		}
	}
	return nil
}

// Kill kills the daemon with SIGKILL, leaving its shims and containers
// running, and waits for its exit.
func (d *CRIDaemon) Kill() {
	if d.proc == nil {
		return
	}
	d.proc.Cmd.Process.Signal(syscall.SIGKILL)
	<-d.proc.Exited
	d.logFile.Close()
	d.proc = nil
}

// Stop removes every pod the daemon runs (crictl rmp --force --all) and
// stops the daemon; then the shims of the pods are gone too.
func (d *CRIDaemon) Stop() {
	if d.proc == nil {
		return
	}
	d.Crictl("rmp", "--force", "--all")
	d.proc.Stop(10 * time.Second)
	d.logFile.Close()
	d.proc = nil
}

// Log is what the daemon wrote in its latest run.
func (d *CRIDaemon) Log() string {
	b, _ := os.ReadFile(filepath.Join(d.LogDir, fmt.Sprintf("daemon-%d.log", d.starts)))
	return string(b)
}

// crictlConfig is crictl's config file for the daemon; without one crictl
// reads /etc/crictl.yaml.
func (d *CRIDaemon) crictlConfig() string { return filepath.Join(d.LogDir, "crictl.yaml") }

// CrictlCommand is crictl with args against the daemon.
func (d *CRIDaemon) CrictlCommand(args ...string) *exec.Cmd {
	return exec.Command(d.CrictlBinary, append([]string{"--config", d.crictlConfig()}, args...)...)
}

// Crictl runs crictl with args and returns its output and exit status.
func (d *CRIDaemon) Crictl(args ...string) (stdout, stderr string, code int, err error) {
	return CommandOutput(d.CrictlCommand(args...))
}

// CrictlOK runs crictl with args and fails unless it exits 0; it returns
// its standard output with surrounding space trimmed.
func (d *CRIDaemon) CrictlOK(args ...string) (string, error) {
	stdout, stderr, code, err := d.Crictl(args...)
	if err != nil || code != 0 {
		return stdout, fmt.Errorf("crictl %s: exit %d %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, err, stdout, stderr)
	}
	return string(bytes.TrimSpace([]byte(stdout))), nil
}
