package spec

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/errdefs"
)

func testSandbox() SandboxInput {
	return SandboxInput{
		ID:           "sb1",
		Config:       testSandboxConfig(),
		Image:        ocispec.ImageConfig{Entrypoint: []string{"/pause"}, Env: []string{"PATH=/bin", "P=1"}, User: "65535:65535"},
		ImageName:    "registry.k8s.io/pause:3.10",
		NetNSPath:    "/var/run/netns/cni-1",
		HostnamePath: "/state/sb1/hostname",
		HostsPath:    "/state/sb1/hosts",
		ResolvPath:   "/state/sb1/resolv.conf",
		ShmPath:      "/state/sb1/shm",
		Runtime:      config.Runtime{PodAnnotations: []string{"pass.example.com/*"}},
		CRI:          config.Default(),
	}
}

func mustSandbox(t *testing.T, in SandboxInput) *specs.Spec {
	t.Helper()
	s, err := Sandbox(context.Background(), in)
	if err != nil {
		t.Fatalf("Sandbox: %v", err)
	}
	checkJSON(t, s)
	return s
}

func TestSandboxDefaults(t *testing.T) {
	stubHost(t, hostFacts{oomScoreAdj: 0})
	in := testSandbox()
	s := mustSandbox(t, in)
	p := s.Process
	if !slices.Equal(p.Args, []string{"/pause"}) || !slices.Equal(p.Env, []string{"PATH=/bin", "P=1"}) || p.Cwd != "/" {
		t.Errorf("process args %q env %q cwd %q", p.Args, p.Env, p.Cwd)
	}
	if p.User.UID != 65535 || p.User.GID != 65535 {
		t.Errorf("user %+v", p.User)
	}
	if s.Hostname != "podhost" || !s.Root.Readonly || s.Root.Path != "rootfs" {
		t.Errorf("hostname %q root %+v", s.Hostname, s.Root)
	}
	if p.OOMScoreAdj == nil || *p.OOMScoreAdj != -998 {
		t.Errorf("oom_score_adj %v", p.OOMScoreAdj)
	}
	if *s.Linux.Resources.CPU.Shares != 2 {
		t.Errorf("cpu shares %v", *s.Linux.Resources.CPU.Shares)
	}
	if s.Linux.Seccomp != nil || p.Rlimits != nil || !p.NoNewPrivileges {
		t.Errorf("seccomp %v rlimits %v nnp %v", s.Linux.Seccomp, p.Rlimits, p.NoNewPrivileges)
	}
	for typ, path := range map[specs.LinuxNamespaceType]string{
		specs.PIDNamespace: "", specs.IPCNamespace: "", specs.UTSNamespace: "", specs.MountNamespace: "", specs.NetworkNamespace: "/var/run/netns/cni-1",
	} {
		if n, ok := nsOf(s, typ); !ok || n.Path != path {
			t.Errorf("%s namespace %+v", typ, n)
		}
	}
	if len(s.Linux.Namespaces) != 5 {
		t.Errorf("namespaces %+v", s.Linux.Namespaces)
	}
	if m := findMount(s, DevShm); m == nil || m.Source != in.ShmPath || m.Type != "bind" || !slices.Equal(m.Options, []string{"rbind", "ro", "nosuid", "nodev", "noexec"}) || countMounts(s, DevShm) != 1 {
		t.Errorf("/dev/shm %+v", m)
	}
	if m := findMount(s, ResolvConf); m == nil || m.Source != in.ResolvPath {
		t.Errorf("resolv.conf %+v", m)
	}
	if findMount(s, EtcHosts) != nil || findMount(s, EtcHostname) != nil || findMount(s, "/run") != nil {
		t.Errorf("hosts, hostname or /run mounted in the pause container")
	}
	wantSysctls := map[string]string{sysctlUnprivilegedPortStart: "0", sysctlPingGroupRange: "0 2147483647"}
	if !maps.Equal(s.Linux.Sysctl, wantSysctls) {
		t.Errorf("sysctls %v", s.Linux.Sysctl)
	}
	wantAnn := map[string]string{
		AnnotationContainerType:    ContainerTypeSandbox,
		AnnotationSandboxID:        "sb1",
		AnnotationSandboxName:      "pod",
		AnnotationSandboxNamespace: "ns",
		AnnotationSandboxUID:       "pod-uid",
		AnnotationSandboxLogDir:    "/var/log/pods/ns_pod_pod-uid",
		AnnotationSandboxImageName: "registry.k8s.io/pause:3.10",
		"pass.example.com/a":       "1",
	}
	if !maps.Equal(s.Annotations, wantAnn) {
		t.Errorf("annotations %v\nwant %v", s.Annotations, wantAnn)
	}
	if s.Linux.CgroupsPath != "/k8s.io/sb1" {
		t.Errorf("cgroups path %q", s.Linux.CgroupsPath)
	}
}

func TestSandboxOptions(t *testing.T) {
	i64 := func(v int64) *runtime.Int64Value { return &runtime.Int64Value{Value: v} }
	for _, tc := range []struct {
		name   string
		facts  hostFacts
		change func(*SandboxInput)
		check  func(*testing.T, *specs.Spec)
	}{
		{
			name: "host network: no net or uts namespace, no hostname, no sysctls",
			change: func(in *SandboxInput) {
				in.Config.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
				in.NetNSPath = ""
			},
			check: func(t *testing.T, s *specs.Spec) {
				_, net := nsOf(s, specs.NetworkNamespace)
				_, uts := nsOf(s, specs.UTSNamespace)
				if net || uts || s.Hostname != "" || len(s.Linux.Sysctl) != 0 {
					t.Errorf("net %v uts %v hostname %q sysctls %v", net, uts, s.Hostname, s.Linux.Sysctl)
				}
			},
		},
		{
			name: "host pid and ipc: the host's /dev/shm",
			change: func(in *SandboxInput) {
				in.Config.Linux.SecurityContext.NamespaceOptions.Pid = runtime.NamespaceMode_NODE
				in.Config.Linux.SecurityContext.NamespaceOptions.Ipc = runtime.NamespaceMode_NODE
				in.ShmPath = ""
			},
			check: func(t *testing.T, s *specs.Spec) {
				_, pid := nsOf(s, specs.PIDNamespace)
				_, ipc := nsOf(s, specs.IPCNamespace)
				if pid || ipc {
					t.Errorf("pid %v ipc %v", pid, ipc)
				}
				if m := findMount(s, DevShm); m == nil || m.Source != "/dev/shm" || m.Type != "bind" {
					t.Errorf("/dev/shm %+v", m)
				}
			},
		},
		{
			name:   "no shm path: the default tmpfs",
			change: func(in *SandboxInput) { in.ShmPath = "" },
			check: func(t *testing.T, s *specs.Spec) {
				if m := findMount(s, DevShm); m == nil || m.Type != "tmpfs" {
					t.Errorf("/dev/shm %+v", m)
				}
			},
		},
		{
			name: "pod sysctls win, config switches",
			change: func(in *SandboxInput) {
				in.Config.Linux.Sysctls = map[string]string{sysctlUnprivilegedPortStart: "1024", "kernel.shm_rmid_forced": "1"}
				in.CRI.EnableUnprivilegedICMP = false
			},
			check: func(t *testing.T, s *specs.Spec) {
				want := map[string]string{sysctlUnprivilegedPortStart: "1024", "kernel.shm_rmid_forced": "1"}
				if !maps.Equal(s.Linux.Sysctl, want) {
					t.Errorf("sysctls %v", s.Linux.Sysctl)
				}
			},
		},
		{
			name:  "daemon in a user namespace: no ping range",
			facts: hostFacts{inUserNS: true},
			check: func(t *testing.T, s *specs.Spec) {
				if _, ok := s.Linux.Sysctl[sysctlPingGroupRange]; ok {
					t.Errorf("sysctls %v", s.Linux.Sysctl)
				}
			},
		},
		{
			name:   "restrict_oom_score_adj",
			facts:  hostFacts{oomScoreAdj: -500},
			change: func(in *SandboxInput) { in.CRI.RestrictOOMScoreAdj = true },
			check: func(t *testing.T, s *specs.Spec) {
				if *s.Process.OOMScoreAdj != -500 {
					t.Errorf("oom_score_adj %d", *s.Process.OOMScoreAdj)
				}
			},
		},
		{
			name:   "restrict_oom_score_adj with a lower daemon",
			facts:  hostFacts{oomScoreAdj: -999},
			change: func(in *SandboxInput) { in.CRI.RestrictOOMScoreAdj = true },
			check: func(t *testing.T, s *specs.Spec) {
				if *s.Process.OOMScoreAdj != -998 {
					t.Errorf("oom_score_adj %d", *s.Process.OOMScoreAdj)
				}
			},
		},
		{
			name: "security context: user, groups, seccomp",
			change: func(in *SandboxInput) {
				sc := in.Config.Linux.SecurityContext
				sc.RunAsUser, sc.RunAsGroup = i64(1000), i64(3000)
				sc.SupplementalGroups = []int64{5, 4}
				sc.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
			},
			check: func(t *testing.T, s *specs.Spec) {
				u := s.Process.User
				if u.UID != 1000 || u.GID != 3000 || !slices.Equal(u.AdditionalGids, []uint32{4, 5, 3000}) {
					t.Errorf("user %+v", u)
				}
				if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno {
					t.Errorf("seccomp %+v", s.Linux.Seccomp)
				}
			},
		},
		{
			name: "run_as_user looked up in the rootfs",
			change: func(in *SandboxInput) {
				in.Config.Linux.SecurityContext.RunAsUser = i64(1001)
				in.Rootfs = testRootfs(t)
			},
			check: func(t *testing.T, s *specs.Spec) {
				if u := s.Process.User; u.UID != 1001 || u.GID != 1002 {
					t.Errorf("user %+v", u)
				}
			},
		},
		{
			name: "unset_seccomp_profile, privileged pod",
			change: func(in *SandboxInput) {
				in.CRI.UnsetSeccompProfile = "runtime/default"
				in.Config.Linux.SecurityContext.Privileged = true
			},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.Seccomp != nil {
					t.Errorf("privileged sandbox has seccomp")
				}
			},
		},
		{
			name: "cgroup parent, resources annotations, working dir",
			change: func(in *SandboxInput) {
				in.Config.Linux.CgroupParent = "kubepods-burstable-pod1.slice"
				in.CgroupsPath = CgroupsPath(in.Config.Linux.CgroupParent, in.ID, true)
				in.Config.Linux.Resources = &runtime.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 20000, CpuShares: 204, MemoryLimitInBytes: 1 << 20}
				in.Image.WorkingDir = "/w"
			},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.CgroupsPath != "kubepods-burstable-pod1.slice:cri-containerd:sb1" || s.Process.Cwd != "/w" {
					t.Errorf("cgroups path %q cwd %q", s.Linux.CgroupsPath, s.Process.Cwd)
				}
				for k, v := range map[string]string{AnnotationSandboxCPUPeriod: "100000", AnnotationSandboxCPUQuota: "20000", AnnotationSandboxCPUShares: "204", AnnotationSandboxMemory: "1048576"} {
					if s.Annotations[k] != v {
						t.Errorf("annotation %s = %q", k, s.Annotations[k])
					}
				}
				if *s.Linux.Resources.CPU.Shares != 2 || s.Linux.Resources.Memory != nil {
					t.Errorf("sandbox resources %+v", s.Linux.Resources)
				}
			},
		},
		{
			name: "user namespace, pinned",
			change: func(in *SandboxInput) {
				in.UserNSPath = "/run/userns/sb1"
				in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{
					Mode: runtime.NamespaceMode_POD,
					Uids: []*runtime.IDMapping{{HostId: 100000, Length: 65536}},
					Gids: []*runtime.IDMapping{{HostId: 100000, Length: 65536}},
				}
			},
			check: func(t *testing.T, s *specs.Spec) {
				n, ok := nsOf(s, specs.UserNamespace)
				want := []specs.LinuxIDMapping{{HostID: 100000, Size: 65536}}
				if !ok || n.Path != "/run/userns/sb1" || !reflect.DeepEqual(s.Linux.UIDMappings, want) || !reflect.DeepEqual(s.Linux.GIDMappings, want) {
					t.Errorf("user namespace %+v mappings %+v %+v", n, s.Linux.UIDMappings, s.Linux.GIDMappings)
				}
				if _, ok := s.Linux.Sysctl[sysctlPingGroupRange]; ok {
					t.Errorf("ping range in a user namespace")
				}
			},
		},
		{
			name: "user namespace with host network: new namespace, /sys bound",
			change: func(in *SandboxInput) {
				in.UserNSPath = "/run/userns/sb1"
				in.Config.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
				in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{
					Mode: runtime.NamespaceMode_POD,
					Uids: []*runtime.IDMapping{{HostId: 100000, Length: 65536}},
					Gids: []*runtime.IDMapping{{HostId: 100000, Length: 65536}},
				}
			},
			check: func(t *testing.T, s *specs.Spec) {
				if n, ok := nsOf(s, specs.UserNamespace); !ok || n.Path != "" {
					t.Errorf("user namespace %+v", n)
				}
				if m := findMount(s, "/sys"); m == nil || m.Type != "bind" || countMounts(s, "/sys") != 1 {
					t.Errorf("/sys %+v", m)
				}
			},
		},
		{
			name: "user namespace mode NODE",
			change: func(in *SandboxInput) {
				in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE}
			},
			check: func(t *testing.T, s *specs.Spec) {
				if _, ok := nsOf(s, specs.UserNamespace); ok || len(s.Linux.UIDMappings) != 0 {
					t.Errorf("user namespace for mode NODE")
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stubHost(t, tc.facts)
			in := testSandbox()
			if tc.change != nil {
				tc.change(&in)
			}
			tc.check(t, mustSandbox(t, in))
		})
	}
}

func TestSandboxErrors(t *testing.T) {
	stubHost(t, hostFacts{})
	for name, change := range map[string]func(*SandboxInput){
		"no config":            func(in *SandboxInput) { in.Config = nil },
		"no id":                func(in *SandboxInput) { in.ID = "" },
		"image without a cmd":  func(in *SandboxInput) { in.Image.Entrypoint, in.Image.Cmd = nil, nil },
		"group without a user": func(in *SandboxInput) { in.Config.Linux.SecurityContext.RunAsGroup = &runtime.Int64Value{Value: 1} },
		"user name without rootfs": func(in *SandboxInput) {
			in.Image.User = "alice"
		},
		"bad seccomp path": func(in *SandboxInput) {
			//lint:ignore SA1019 the deprecated field is still sent by older kubelets
			in.Config.Linux.SecurityContext.SeccompProfilePath = "nonsense"
		},
		"userns POD without mappings": func(in *SandboxInput) {
			in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD}
		},
		"userns bad mode": func(in *SandboxInput) {
			in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{Mode: runtime.NamespaceMode_TARGET}
		},
		"userns more than one mapping": func(in *SandboxInput) {
			two := []*runtime.IDMapping{{HostId: 1000, Length: 100000}, {HostId: 2000, Length: 100000}}
			in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: two, Gids: two}
		},
		"userns container id 0 not mapped": func(in *SandboxInput) {
			m := []*runtime.IDMapping{{ContainerId: 1, HostId: 1000, Length: 100000}}
			in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m, Gids: m}
		},
		"userns gid 0 not mapped": func(in *SandboxInput) {
			in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{
				Mode: runtime.NamespaceMode_POD,
				Uids: []*runtime.IDMapping{{HostId: 1000, Length: 100000}},
				Gids: []*runtime.IDMapping{{ContainerId: 5, HostId: 1000, Length: 100000}},
			}
		},
		"userns range past the largest id": func(in *SandboxInput) {
			m := []*runtime.IDMapping{{HostId: 1<<32 - 10, Length: 100}}
			in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m, Gids: m}
		},
		"userns CONTAINER": func(in *SandboxInput) {
			in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{Mode: runtime.NamespaceMode_CONTAINER}
		},
		"userns NODE with mappings": func(in *SandboxInput) {
			m := []*runtime.IDMapping{{HostId: 1000, Length: 10}}
			in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE, Uids: m, Gids: m}
		},
		"bad mapping length": func(in *SandboxInput) {
			in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{
				Mode: runtime.NamespaceMode_POD,
				Uids: []*runtime.IDMapping{{HostId: 1, Length: 0}},
				Gids: []*runtime.IDMapping{{HostId: 1, Length: 1}},
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			in := testSandbox()
			change(&in)
			if _, err := Sandbox(context.Background(), in); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err %v, want invalid argument", err)
			}
		})
	}
}
