package testutil

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// A real kubelet (bin/cri/kubelet, built by script/cri-kubelet.sh) in
// standalone mode: static pod manifests from a directory, no API server,
// its CRI endpoint a CRIDaemon's socket. Run it from inside CRIIsolate's
// namespaces (its HTTP ports and anything it does to the network stay in
// the run's network namespace).
//
// Left alone a kubelet changes the host. What it would touch and where
// this keeps it:
//   - /var/lib/kubelet (--root-dir, --cert-dir), the pods' logs
//     (podLogsDir) and the flex volume plugin dir (volumePluginDir): under
//     the kubelet's temporary directory, by flag and config;
//   - /var/lib/kubelet/device-plugins and /var/log/containers, paths the
//     kubelet hard-codes: the kubelet runs in a mount namespace of its own
//     (nested in the run's) with tmpfs over /var/lib and /var/log, so that
//     not even their directories are made on the host;
//   - the sysctls its container manager sets at start whatever
//     protectKernelDefaults says (false: it writes its values; true: it
//     refuses to start unless the host already has them): vm.overcommit_memory,
//     vm.panic_on_oom, kernel.panic, kernel.panic_on_oops,
//     kernel.keys.root_maxkeys and kernel.keys.root_maxbytes. /proc/sys is
//     the host's in any mount namespace, so in the kubelet's own each of
//     these files is covered by a bind mount of a regular file holding the
//     host's value: the kubelet's writes land there (KubeletShieldedSysctls);
//   - cgroups: its cgroupRoot is a cgroup of the run's own, made in every
//     hierarchy before the kubelet starts and removed, with all the kubelet
//     made under it, by Cleanup;
//   - iptables chains (makeIPTablesUtilChains: false), swap and cgroup v1
//     checks (failSwapOn, failCgroupV1: false), its OOM score (oomScoreAdj
//     0: this host does not let a process lower it); image garbage
//     collection and disk-pressure eviction are off, so that it removes
//     nothing the daemon's other users hold.

// KubeletShieldedSysctls are the sysctls (paths under /proc/sys) the
// kubelet's container manager sets, which CRIKubelet shields the host from.
var KubeletShieldedSysctls = []string{
	"vm/overcommit_memory",
	"vm/panic_on_oom",
	"kernel/panic",
	"kernel/panic_on_oops",
	"kernel/keys/root_maxkeys",
	"kernel/keys/root_maxbytes",
}

// KubeletHostPaths are the host paths a kubelet makes when left alone;
// HostSnapshot records whether each exists.
var KubeletHostPaths = []string{
	"/var/lib/kubelet",
	"/var/log/containers",
	"/var/log/pods",
	"/usr/libexec/kubernetes",
}

// CRIKubelet is a kubelet under test and its files.
type CRIKubelet struct {
	Binary string
	// Dir holds everything of the kubelet's: RootDir, ManifestDir
	// (staticPodPath), PodLogsDir, ShieldDir (the files over /proc/sys),
	// its config and its log.
	Dir, RootDir, ManifestDir, PodLogsDir, ShieldDir, Config, LogPath string
	// CgroupRoot is the kubelet's cgroupRoot, as the kubelet names it.
	CgroupRoot string

	proc    *Process
	logFile *os.File
}

// KubeletBinary is where script/cri-kubelet.sh puts the kubelet.
func KubeletBinary(repoRoot string) string { return filepath.Join(CRIBinDir(repoRoot), "kubelet") }

// NewCRIKubelet lays a kubelet out under dir, driving d, and makes its
// cgroup root (named after name) in every cgroup hierarchy. Call Cleanup
// when done, even on error.
func NewCRIKubelet(repoRoot, dir, name string, d *CRIDaemon) (*CRIKubelet, error) {
	k := &CRIKubelet{
		Binary:      KubeletBinary(repoRoot),
		Dir:         dir,
		RootDir:     filepath.Join(dir, "root"),
		ManifestDir: filepath.Join(dir, "manifests"),
		PodLogsDir:  filepath.Join(dir, "pod-logs"),
		ShieldDir:   filepath.Join(dir, "sysctl-shield"),
		Config:      filepath.Join(dir, "kubelet.yaml"),
		LogPath:     filepath.Join(dir, "kubelet.log"),
		CgroupRoot:  "/" + name,
	}
	if _, err := os.Stat(k.Binary); err != nil {
		return nil, fmt.Errorf("the kubelet test needs %s (`make cri-kubelet` builds it): %w", k.Binary, err)
	}
	for _, p := range []string{k.RootDir, k.ManifestDir, k.PodLogsDir, k.ShieldDir} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(k.Config, []byte(k.configText(d)), 0o644); err != nil {
		return nil, err
	}
	for _, h := range cgroupHierarchies() {
		p := filepath.Join(h, k.CgroupRoot)
		if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("make the kubelet's cgroup root: %w", err)
		}
		// A new cpuset cgroup of cgroup v1 has no cpus or mems: nothing
		// could run under it. Give it its parent's.
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if b, err := os.ReadFile(filepath.Join(h, f)); err == nil {
				os.WriteFile(filepath.Join(p, f), b, 0o644)
			}
		}
	}
	return k, nil
}

// configText is the kubelet's KubeletConfiguration: standalone (static
// pods from ManifestDir, polled every second), its HTTP endpoints open
// without an API server to authenticate against (anonymous, AlwaysAllow;
// they listen in the run's network namespace only), and what keeps it off
// the host (see the comment at the top of this file).
func (k *CRIKubelet) configText(d *CRIDaemon) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: %q
imageServiceEndpoint: %q
staticPodPath: %q
fileCheckFrequency: 1s
podLogsDir: %q
volumePluginDir: %q
cgroupDriver: cgroupfs
cgroupRoot: %q
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
protectKernelDefaults: false
oomScoreAdj: 0
readOnlyPort: 0
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "0%%"
  nodefs.inodesFree: "0%%"
  imagefs.available: "0%%"
`, d.Endpoint, d.Endpoint, k.ManifestDir, k.PodLogsDir, filepath.Join(k.Dir, "volume-plugins"), k.CgroupRoot)
}

// wrapper runs in the kubelet's own mount namespace (unshare -m, private
// propagation) and execs the kubelet ("$@") once /var/lib and /var/log
// are tmpfs and each shielded sysctl file is covered by a copy of its
// value in $1.
const kubeletWrapper = `set -e
shield=$1; shift
mount -t tmpfs -o mode=755 tmpfs /var/lib
mount -t tmpfs -o mode=755 tmpfs /var/log
for f in ` + "$KUBELET_SHIELDED_SYSCTLS" + `; do
	copy=$shield/$(echo "$f" | tr / .)
	cat "/proc/sys/$f" >"$copy"
	mount --bind "$copy" "/proc/sys/$f"
done
exec "$@"
`

// Start starts the kubelet; its output goes to LogPath.
func (k *CRIKubelet) Start() error {
	f, err := os.Create(k.LogPath)
	if err != nil {
		return err
	}
	k.logFile = f
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", kubeletWrapper, "kubelet-wrapper", k.ShieldDir,
		k.Binary, "--config", k.Config, "--root-dir", k.RootDir, "--cert-dir", filepath.Join(k.RootDir, "pki"), "--v", "2")
	cmd.Env = append(os.Environ(), "KUBELET_SHIELDED_SYSCTLS="+strings.Join(KubeletShieldedSysctls, " "))
	cmd.Stdout, cmd.Stderr = f, f
	if k.proc, err = StartProcess(cmd); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", k.Binary, err)
	}
	return nil
}

// Exited is closed when the kubelet has exited.
func (k *CRIKubelet) Exited() <-chan struct{} { return k.proc.Exited }

// Pid is the kubelet's process id (the wrapper execs it).
func (k *CRIKubelet) Pid() int { return k.proc.Cmd.Process.Pid }

// Stop stops the kubelet (SIGTERM, SIGKILL after 10s) and reports whether
// it exited of itself.
func (k *CRIKubelet) Stop() bool {
	if k.proc == nil {
		return true
	}
	ok := k.proc.Stop(10 * time.Second)
	k.logFile.Close()
	return ok
}

// Log is what the kubelet wrote.
func (k *CRIKubelet) Log() string {
	b, _ := os.ReadFile(k.LogPath)
	return string(b)
}

// ShieldedValues are the values the kubelet sees (and wrote) for the
// shielded sysctls, by path under /proc/sys.
func (k *CRIKubelet) ShieldedValues() map[string]string {
	m := map[string]string{}
	for _, f := range KubeletShieldedSysctls {
		b, err := os.ReadFile(filepath.Join(k.ShieldDir, strings.ReplaceAll(f, "/", ".")))
		if err == nil {
			m[f] = strings.TrimSpace(string(b))
		}
	}
	return m
}

// Cleanup removes the kubelet's cgroup root, with the cgroups it made
// under it, from every hierarchy. It returns the cgroups it could not
// remove (a process still in one).
func (k *CRIKubelet) Cleanup() []string {
	var left []string
	for _, h := range cgroupHierarchies() {
		root := filepath.Join(h, k.CgroupRoot)
		var dirs []string
		filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		// Deepest first: a cgroup goes only once it has no children.
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, p := range dirs {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				left = append(left, p)
			}
		}
	}
	return left
}

// cgroupHierarchies are the mount points of the cgroup (v1) and cgroup2
// file systems this process sees.
func cgroupHierarchies() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	seen := map[string]bool{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		// id parent major:minor root mountpoint opts... - fstype source superopts
		fields := strings.Fields(s.Text())
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) && i >= 5 {
				if t := fields[i+1]; (t == "cgroup" || t == "cgroup2") && !seen[fields[4]] {
					seen[fields[4]] = true
					out = append(out, fields[4])
				}
				break
			}
		}
	}
	return out
}

// HostState is what a kubelet could change on the host: the shielded
// sysctls' values and whether each of KubeletHostPaths exists, seen
// through /proc/1/root (the host's mount namespace, not the run's).
type HostState struct {
	Sysctls map[string]string
	Paths   map[string]bool
}

// HostSnapshot records the host's state.
func HostSnapshot() (HostState, error) {
	s := HostState{Sysctls: map[string]string{}, Paths: map[string]bool{}}
	for _, f := range KubeletShieldedSysctls {
		b, err := os.ReadFile(filepath.Join("/proc/sys", f))
		if err != nil {
			return s, err
		}
		s.Sysctls[f] = strings.TrimSpace(string(b))
	}
	for _, p := range KubeletHostPaths {
		_, err := os.Lstat(filepath.Join("/proc/1/root", p))
		s.Paths[p] = err == nil
	}
	return s, nil
}

// Diff lists how after differs from s.
func (s HostState) Diff(after HostState) []string {
	var d []string
	for _, f := range KubeletShieldedSysctls {
		if s.Sysctls[f] != after.Sysctls[f] {
			d = append(d, fmt.Sprintf("/proc/sys/%s: %s -> %s", f, s.Sysctls[f], after.Sysctls[f]))
		}
	}
	for _, p := range KubeletHostPaths {
		if s.Paths[p] != after.Paths[p] {
			d = append(d, fmt.Sprintf("%s: exists %v -> %v", p, s.Paths[p], after.Paths[p]))
		}
	}
	return d
}

// ProcessesOf lists the processes (pid and command line) whose executable
// is binary.
func ProcessesOf(binary string) []string {
	var out []string
	resolved, _ := filepath.EvalSymlinks(binary)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || (exe != binary && exe != resolved) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out = append(out, e.Name()+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return out
}
