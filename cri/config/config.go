// Package config is the CRI plugin's configuration: the
// [plugins."io.containerd.grpc.v1.cri"] section of containerd's version 2
// config, with the names and defaults operators already write for
// containerd 1.6 and 1.7 (and that containerd 2.x still reads from a
// version 2 file).
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/llitfkitfk/containerd/errdefs"
)

// Namespace is the containerd namespace every CRI object lives in, as in
// containerd: clients such as `ctr -n k8s.io` see the kubelet's pods there.
const Namespace = "k8s.io"

// PluginURI is the plugin's name in the config and in introspection.
const PluginURI = "io.containerd.grpc.v1.cri"

// Config is the CRI plugin's section.
type Config struct {
	Containerd ContainerdConfig `toml:"containerd"`
	CNI        CNIConfig        `toml:"cni"`
	Registry   Registry         `toml:"registry"`

	// SandboxImage is the pause image every pod's sandbox container runs;
	// it is pulled when missing and never garbage collected.
	SandboxImage string `toml:"sandbox_image"`

	// The streaming server for Exec, Attach and PortForward: the kubelet
	// (or crictl) is handed a URL on it.
	StreamServerAddress string `toml:"stream_server_address"`
	StreamServerPort    string `toml:"stream_server_port"`
	// StreamIdleTimeout closes a streaming connection idle this long.
	StreamIdleTimeout    string               `toml:"stream_idle_timeout"`
	EnableTLSStreaming   bool                 `toml:"enable_tls_streaming"`
	X509KeyPairStreaming X509KeyPairStreaming `toml:"x509_key_pair_streaming"`

	// EnableSelinux asks for SELinux labels on containers. This daemon has
	// no SELinux support: Validate refuses it on a host where SELinux is
	// enabled and ignores it, with a warning, where it is not.
	EnableSelinux        bool `toml:"enable_selinux"`
	SelinuxCategoryRange int  `toml:"selinux_category_range"`
	// DisableApparmor: this daemon applies no AppArmor profiles; a
	// container that asks for one other than unconfined is refused.
	DisableApparmor bool `toml:"disable_apparmor"`

	// RestrictOOMScoreAdj raises a requested oom_score_adj that is lower
	// than the daemon's own to the daemon's, so that containers can be
	// made on hosts where lowering it is not allowed (no CAP_SYS_RESOURCE).
	RestrictOOMScoreAdj bool `toml:"restrict_oom_score_adj"`
	// MaxContainerLogLineSize splits longer log lines into partial ones;
	// -1 means no limit.
	MaxContainerLogLineSize int `toml:"max_container_log_line_size"`
	// DisableProcMount ignores the CRI's ProcMountType (Kubernetes' default).
	DisableProcMount bool `toml:"disable_proc_mount"`
	// UnsetSeccompProfile is the profile for containers that name none
	// ("" means unconfined, as in containerd).
	UnsetSeccompProfile string `toml:"unset_seccomp_profile"`
	// The hugetlb cgroup controller: tolerate its absence, or do not use it.
	TolerateMissingHugetlbController bool `toml:"tolerate_missing_hugetlb_controller"`
	DisableHugetlbController         bool `toml:"disable_hugetlb_controller"`
	// DeviceOwnershipFromSecurityContext gives devices of privileged
	// containers the container's run-as user and group.
	DeviceOwnershipFromSecurityContext bool `toml:"device_ownership_from_security_context"`
	// IgnoreImageDefinedVolumes skips the image's VOLUMEs.
	IgnoreImageDefinedVolumes bool `toml:"ignore_image_defined_volumes"`
	// NetNSMountsUnderStateDir keeps the pods' network namespace mounts in
	// the plugin's state directory instead of /var/run/netns.
	NetNSMountsUnderStateDir bool `toml:"netns_mounts_under_state_dir"`
	// Sysctls set in every pod with its own network namespace:
	// net.ipv4.ip_unprivileged_port_start=0 and
	// net.ipv4.ping_group_range=0 2147483647.
	EnableUnprivilegedPorts bool `toml:"enable_unprivileged_ports"`
	EnableUnprivilegedICMP  bool `toml:"enable_unprivileged_icmp"`
	// MaxConcurrentDownloads bounds layer downloads of one pull.
	MaxConcurrentDownloads int `toml:"max_concurrent_downloads"`
	// ImagePullProgressTimeout cancels a pull that made no progress for
	// this long ("0" disables).
	ImagePullProgressTimeout string `toml:"image_pull_progress_timeout"`
	// StatsCollectPeriod is how often, in seconds, usage of image
	// filesystems is sampled.
	StatsCollectPeriod int `toml:"stats_collect_period"`
	// DisableTCPService: the CRI is served on the unix socket only (the
	// only mode this daemon has).
	DisableTCPService bool `toml:"disable_tcp_service"`
	// DrainExecSyncIOTimeout waits this long for an ExecSync's output
	// after its process exited ("0" waits for all of it).
	DrainExecSyncIOTimeout string `toml:"drain_exec_sync_io_timeout"`
	// EnableCDI and CDISpecDirs: Container Device Interface, not supported
	// (devices named by CDI are refused).
	EnableCDI   bool     `toml:"enable_cdi"`
	CDISpecDirs []string `toml:"cdi_spec_dirs"`
	// IgnoreDeprecationWarnings is accepted for compatibility.
	IgnoreDeprecationWarnings []string `toml:"ignore_deprecation_warnings"`
	// SystemdCgroup at this level is containerd 1.x's deprecated spelling;
	// runtimes.<name>.options.SystemdCgroup is the one that counts.
	SystemdCgroup bool `toml:"systemd_cgroup"`

	// The plugin's own directories, set by the plugin from the daemon's
	// root and state, not by the config file.
	RootDir  string `toml:"-"`
	StateDir string `toml:"-"`
}

// ContainerdConfig is [plugins."io.containerd.grpc.v1.cri".containerd].
type ContainerdConfig struct {
	// Snapshotter unpacks images and holds container root filesystems.
	Snapshotter string `toml:"snapshotter"`
	// DefaultRuntimeName is the runtime of pods whose RuntimeHandler is "".
	DefaultRuntimeName string `toml:"default_runtime_name"`
	// Runtimes by handler name.
	Runtimes map[string]Runtime `toml:"runtimes"`
	// DisableSnapshotAnnotations: accepted, no remote snapshotters here.
	DisableSnapshotAnnotations bool `toml:"disable_snapshot_annotations"`
	// DiscardUnpackedLayers drops compressed layers once unpacked.
	DiscardUnpackedLayers bool `toml:"discard_unpacked_layers"`
	// Accepted for containerd 1.x files; they do nothing here.
	NoPivot                       bool `toml:"no_pivot"`
	IgnoreBlockIONotEnabledErrors bool `toml:"ignore_blockio_not_enabled_errors"`
	IgnoreRdtNotEnabledErrors     bool `toml:"ignore_rdt_not_enabled_errors"`
}

// Runtime is one entry of runtimes.<handler>.
type Runtime struct {
	// Type is the runtime-v2 name, io.containerd.runc.v2 for runc.
	Type string `toml:"runtime_type"`
	// Path, if set, is the shim binary to start instead of the one Type
	// names.
	Path string `toml:"runtime_path"`
	// PodAnnotations and ContainerAnnotations pass the pod's annotations
	// matching these patterns into the OCI spec.
	PodAnnotations       []string `toml:"pod_annotations"`
	ContainerAnnotations []string `toml:"container_annotations"`
	// Options is the runtime's options; for runc the fields of
	// containerd.runc.v1.Options by their Go names (BinaryName, Root,
	// SystemdCgroup, NoPivotRoot, ...). See RuncOptions.
	Options map[string]any `toml:"options"`
	// PrivilegedWithoutHostDevices gives privileged containers no host
	// devices.
	PrivilegedWithoutHostDevices                  bool `toml:"privileged_without_host_devices"`
	PrivilegedWithoutHostDevicesAllDevicesAllowed bool `toml:"privileged_without_host_devices_all_devices_allowed"`
	// BaseRuntimeSpec is a JSON OCI spec file to start containers' specs
	// from instead of the default.
	BaseRuntimeSpec string `toml:"base_runtime_spec"`
	// Per-runtime CNI configuration, overriding [cni].
	NetworkPluginConfDir    string `toml:"cni_conf_dir"`
	NetworkPluginMaxConfNum int    `toml:"cni_max_conf_num"`
	// Snapshotter overrides containerd.snapshotter for this runtime.
	Snapshotter string `toml:"snapshotter"`
	// SandboxMode (1.7) and Sandboxer (2.x): only "podsandbox" exists here.
	SandboxMode string `toml:"sandbox_mode"`
	Sandboxer   string `toml:"sandboxer"`
	// CgroupWritable mounts the container's cgroup read-write.
	CgroupWritable bool `toml:"cgroup_writable"`
	// IOType is accepted for compatibility; IO is always through fifos.
	IOType string `toml:"io_type"`
}

// CNIConfig is [plugins."io.containerd.grpc.v1.cri".cni].
type CNIConfig struct {
	// BinDir and BinDirs (2.x) are where CNI plugin binaries are found.
	BinDir  string   `toml:"bin_dir"`
	BinDirs []string `toml:"bin_dirs"`
	// ConfDir holds the network configuration; the first MaxConfNum files
	// in lexical order are loaded (0: all of them).
	ConfDir    string `toml:"conf_dir"`
	MaxConfNum int    `toml:"max_conf_num"`
	// SetupSerially sets networks up one after another.
	SetupSerially bool `toml:"setup_serially"`
	// ConfTemplate, if set, is rendered into ConfDir once the node's pod
	// CIDR is known (UpdateRuntimeConfig).
	ConfTemplate string `toml:"conf_template"`
	// IPPreference picks the pod IP among several: "ipv4" (default),
	// "ipv6" or "cni" (the order CNI returned).
	IPPreference string `toml:"ip_pref"`
	// UseInternalLoopback brings lo up without the loopback plugin.
	UseInternalLoopback bool `toml:"use_internal_loopback"`
}

// X509KeyPairStreaming is the streaming server's certificate.
type X509KeyPairStreaming struct {
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`
}

// Registry is [plugins."io.containerd.grpc.v1.cri".registry].
type Registry struct {
	// ConfigPath is the directory of per-host hosts.toml files (shared
	// with the transfer service's registry client).
	ConfigPath string `toml:"config_path"`
	// Mirrors, Configs and Auths are containerd 1.x's deprecated inline
	// registry settings.
	Mirrors map[string]Mirror         `toml:"mirrors"`
	Configs map[string]RegistryConfig `toml:"configs"`
	Auths   map[string]AuthConfig     `toml:"auths"`
	// Headers are sent with every registry request.
	Headers map[string][]string `toml:"headers"`
}

// Mirror is registry.mirrors.<host>.
type Mirror struct {
	Endpoints []string `toml:"endpoint"`
}

// RegistryConfig is registry.configs.<host>.
type RegistryConfig struct {
	Auth *AuthConfig `toml:"auth"`
	TLS  *TLSConfig  `toml:"tls"`
}

// AuthConfig is a registry's credentials.
type AuthConfig struct {
	Username      string `toml:"username"`
	Password      string `toml:"password"`
	Auth          string `toml:"auth"`
	IdentityToken string `toml:"identitytoken"`
}

// TLSConfig is a registry's TLS settings.
type TLSConfig struct {
	InsecureSkipVerify bool   `toml:"insecure_skip_verify"`
	CAFile             string `toml:"ca_file"`
	CertFile           string `toml:"cert_file"`
	KeyFile            string `toml:"key_file"`
}

// The defaults that differ from the zero value; containerd's.
const (
	DefaultSandboxImage = "registry.k8s.io/pause:3.10"
	DefaultRuntimeName  = "runc"
	DefaultRuntimeType  = "io.containerd.runc.v2"
	DefaultSnapshotter  = "overlayfs"
	DefaultCNIBinDir    = "/opt/cni/bin"
	DefaultCNIConfDir   = "/etc/cni/net.d"
	// DefaultRegistryConfigPath matches the transfer service's.
	DefaultRegistryConfigPath = "/etc/containerd/certs.d"
)

// Default returns the section's defaults, as containerd's.
func Default() *Config {
	return &Config{
		Containerd: ContainerdConfig{
			Snapshotter:        DefaultSnapshotter,
			DefaultRuntimeName: DefaultRuntimeName,
			Runtimes: map[string]Runtime{
				DefaultRuntimeName: {Type: DefaultRuntimeType, Options: map[string]any{}, Sandboxer: "podsandbox"},
			},
			DisableSnapshotAnnotations: true,
		},
		CNI: CNIConfig{
			BinDir:     DefaultCNIBinDir,
			ConfDir:    DefaultCNIConfDir,
			MaxConfNum: 1,
		},
		SandboxImage:                     DefaultSandboxImage,
		StreamServerAddress:              "127.0.0.1",
		StreamServerPort:                 "0",
		StreamIdleTimeout:                "4h",
		EnableSelinux:                    false,
		SelinuxCategoryRange:             1024,
		MaxContainerLogLineSize:          16 * 1024,
		TolerateMissingHugetlbController: true,
		DisableHugetlbController:         true,
		EnableUnprivilegedPorts:          true,
		EnableUnprivilegedICMP:           true,
		MaxConcurrentDownloads:           3,
		ImagePullProgressTimeout:         "5m",
		StatsCollectPeriod:               10,
		DisableTCPService:                true,
		DrainExecSyncIOTimeout:           "0s",
	}
}

// Validate checks the section after decoding and fills what follows from
// other fields; every error names the key at fault. warn receives what is
// accepted but has no effect here.
func (c *Config) Validate(warn func(string)) error {
	if c.Containerd.Snapshotter == "" {
		c.Containerd.Snapshotter = DefaultSnapshotter
	}
	if c.Containerd.DefaultRuntimeName == "" {
		return fmt.Errorf("containerd.default_runtime_name is empty: %w", errdefs.ErrInvalidArgument)
	}
	if _, ok := c.Containerd.Runtimes[c.Containerd.DefaultRuntimeName]; !ok {
		return fmt.Errorf("containerd.default_runtime_name %q: no containerd.runtimes.%s section: %w",
			c.Containerd.DefaultRuntimeName, c.Containerd.DefaultRuntimeName, errdefs.ErrInvalidArgument)
	}
	for name, r := range c.Containerd.Runtimes {
		if r.Type == "" {
			r.Type = DefaultRuntimeType
		}
		for _, mode := range []string{r.SandboxMode, r.Sandboxer} {
			if mode != "" && mode != "podsandbox" {
				return fmt.Errorf("containerd.runtimes.%s: sandbox mode %q: only \"podsandbox\" is supported: %w", name, mode, errdefs.ErrInvalidArgument)
			}
		}
		if _, err := r.RuncOptions(); err != nil {
			return fmt.Errorf("containerd.runtimes.%s.options: %w", name, err)
		}
		c.Containerd.Runtimes[name] = r
	}
	if c.EnableSelinux {
		if selinuxEnabled() {
			return fmt.Errorf("enable_selinux = true: this daemon has no SELinux support and the host enforces SELinux: %w", errdefs.ErrNotImplemented)
		}
		warn("enable_selinux = true is ignored: SELinux is not enabled on this host")
		c.EnableSelinux = false
	}
	if c.EnableTLSStreaming && (c.X509KeyPairStreaming.TLSCertFile == "") != (c.X509KeyPairStreaming.TLSKeyFile == "") {
		return fmt.Errorf("x509_key_pair_streaming: tls_cert_file and tls_key_file go together: %w", errdefs.ErrInvalidArgument)
	}
	for key, d := range map[string]string{
		"stream_idle_timeout":         c.StreamIdleTimeout,
		"image_pull_progress_timeout": c.ImagePullProgressTimeout,
		"drain_exec_sync_io_timeout":  c.DrainExecSyncIOTimeout,
	} {
		if d == "" {
			continue
		}
		if _, err := time.ParseDuration(d); err != nil {
			return fmt.Errorf("%s = %q: %v: %w", key, d, err, errdefs.ErrInvalidArgument)
		}
	}
	switch c.CNI.IPPreference {
	case "", "ipv4", "ipv6", "cni":
	default:
		return fmt.Errorf("cni.ip_pref = %q: want ipv4, ipv6 or cni: %w", c.CNI.IPPreference, errdefs.ErrInvalidArgument)
	}
	if c.CNI.BinDir != "" && len(c.CNI.BinDirs) == 0 {
		c.CNI.BinDirs = []string{c.CNI.BinDir}
	}
	if c.EnableCDI {
		warn("enable_cdi = true is ignored: this daemon has no CDI support")
	}
	if c.SystemdCgroup {
		warn("systemd_cgroup is containerd 1.x's deprecated setting and is ignored; set containerd.runtimes.<name>.options.SystemdCgroup")
	}
	if c.Registry.ConfigPath == "" && len(c.Registry.Mirrors) == 0 && len(c.Registry.Configs) == 0 {
		c.Registry.ConfigPath = DefaultRegistryConfigPath
	}
	return nil
}

// Duration returns a validated duration field's value (0 for "").
func Duration(s string) time.Duration {
	d, _ := time.ParseDuration(s)
	return d
}

// selinuxEnabled reports whether the host has SELinux on (its filesystem
// mounted with an enforce file).
func selinuxEnabled() bool {
	_, err := os.Stat(filepath.Join("/sys/fs/selinux", "enforce"))
	return err == nil
}

// ErrUnknownRuntime is returned for a RuntimeHandler with no runtimes entry.
var ErrUnknownRuntime = errors.New("no runtime for handler")

// RuntimeFor returns the runtime for a pod's RuntimeHandler ("" is the
// default runtime).
func (c *Config) RuntimeFor(handler string) (Runtime, error) {
	if handler == "" {
		handler = c.Containerd.DefaultRuntimeName
	}
	r, ok := c.Containerd.Runtimes[handler]
	if !ok {
		return Runtime{}, fmt.Errorf("runtime handler %q: %w: %w", handler, ErrUnknownRuntime, errdefs.ErrNotFound)
	}
	return r, nil
}
