package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/llitfkitfk/containerd/errdefs"
)

// A section as operators write it for containerd 1.6 (the body of
// [plugins."io.containerd.grpc.v1.cri"]).
const section16 = `
sandbox_image = "registry.k8s.io/pause:3.9"
stream_server_address = "0.0.0.0"
stream_server_port = "10010"
restrict_oom_score_adj = true
max_container_log_line_size = -1
[containerd]
  snapshotter = "native"
  default_runtime_name = "runc"
  [containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [containerd.runtimes.runc.options]
      BinaryName = "/usr/local/sbin/runc"
      Root = "/run/runc-k8s"
      SystemdCgroup = true
      IoUid = 1000
  [containerd.runtimes.kata]
    runtime_type = "io.containerd.kata.v2"
    pod_annotations = ["io.katacontainers.*"]
[cni]
  bin_dir = "/opt/cni/bin"
  conf_dir = "/etc/cni/net.d"
  max_conf_num = 2
[registry]
  config_path = "/etc/containerd/certs.d"
`

func decode(t *testing.T, text string) *Config {
	t.Helper()
	c := Default()
	md, err := toml.Decode(text, c)
	if err != nil {
		t.Fatal(err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		t.Fatalf("keys not decoded: %v", und)
	}
	return c
}

func TestDecodeContainerd16Section(t *testing.T) {
	c := decode(t, section16)
	var warnings []string
	if err := c.Validate(func(s string) { warnings = append(warnings, s) }); err != nil {
		t.Fatal(err)
	}
	if c.SandboxImage != "registry.k8s.io/pause:3.9" || c.StreamServerPort != "10010" || !c.RestrictOOMScoreAdj {
		t.Errorf("top-level keys: %+v", c)
	}
	if c.MaxContainerLogLineSize != -1 || c.Containerd.Snapshotter != "native" || c.CNI.MaxConfNum != 2 {
		t.Errorf("values: log line %d snapshotter %q max conf %d", c.MaxContainerLogLineSize, c.Containerd.Snapshotter, c.CNI.MaxConfNum)
	}
	if got := c.CNI.BinDirs; len(got) != 1 || got[0] != "/opt/cni/bin" {
		t.Errorf("bin_dirs from bin_dir: %v", got)
	}
	r, err := c.RuntimeFor("")
	if err != nil {
		t.Fatal(err)
	}
	o, err := r.RuncOptions()
	if err != nil {
		t.Fatal(err)
	}
	if o.BinaryName != "/usr/local/sbin/runc" || o.Root != "/run/runc-k8s" || !o.SystemdCgroup || o.IoUid != 1000 {
		t.Errorf("runc options: %+v", o)
	}
	kata, err := c.RuntimeFor("kata")
	if err != nil || kata.Type != "io.containerd.kata.v2" || len(kata.PodAnnotations) != 1 {
		t.Errorf("kata runtime: %+v, %v", kata, err)
	}
	if _, err := c.RuntimeFor("gvisor"); !errors.Is(err, ErrUnknownRuntime) || !errdefs.IsNotFound(err) {
		t.Errorf("unknown handler: %v", err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %v", warnings)
	}
}

func TestDefaultsValidate(t *testing.T) {
	c := Default()
	if err := c.Validate(func(string) {}); err != nil {
		t.Fatal(err)
	}
	if c.Registry.ConfigPath != DefaultRegistryConfigPath {
		t.Errorf("registry config path %q", c.Registry.ConfigPath)
	}
	r, _ := c.RuntimeFor("")
	if r.Type != DefaultRuntimeType {
		t.Errorf("default runtime type %q", r.Type)
	}
}

func TestValidateRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"no default runtime", `[containerd]
default_runtime_name = "crun"`, `default_runtime_name "crun"`},
		{"misspelt runc option", `[containerd.runtimes.runc.options]
systemd_cgroup = true`, `unknown option "systemd_cgroup"`},
		{"runc option of the wrong type", `[containerd.runtimes.runc.options]
SystemdCgroup = "yes"`, "option SystemdCgroup"},
		{"negative io uid", `[containerd.runtimes.runc.options]
IoUid = -1`, "option IoUid"},
		{"shim sandboxer", `[containerd.runtimes.runc]
sandboxer = "shim"`, `sandbox mode "shim"`},
		{"bad duration", `stream_idle_timeout = "4 hours"`, "stream_idle_timeout"},
		{"bad ip_pref", `[cni]
ip_pref = "ipv5"`, "cni.ip_pref"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := decode(t, tc.text)
			err := c.Validate(func(string) {})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("%v is not InvalidArgument", err)
			}
		})
	}
}

func TestValidateWarnsForIgnoredSettings(t *testing.T) {
	c := decode(t, "enable_cdi = true\nsystemd_cgroup = true\n")
	var warnings []string
	if err := c.Validate(func(s string) { warnings = append(warnings, s) }); err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 2 {
		t.Errorf("warnings: %q", warnings)
	}
}
