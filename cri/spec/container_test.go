package spec

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/oci"
)

func TestArgs(t *testing.T) {
	for _, tc := range []struct {
		name            string
		command, args   []string
		entrypoint, cmd []string
		want            []string
		wantErr         bool
	}{
		{name: "image only", entrypoint: []string{"/e", "x"}, cmd: []string{"c"}, want: []string{"/e", "x", "c"}},
		{name: "args replace cmd", entrypoint: []string{"/e"}, cmd: []string{"c"}, args: []string{"a1", "a2"}, want: []string{"/e", "a1", "a2"}},
		{name: "command drops entrypoint and cmd", entrypoint: []string{"/e"}, cmd: []string{"c"}, command: []string{"/bin/sh"}, want: []string{"/bin/sh"}},
		{name: "command and args", entrypoint: []string{"/e"}, cmd: []string{"c"}, command: []string{"/bin/sh"}, args: []string{"-c", "true"}, want: []string{"/bin/sh", "-c", "true"}},
		{name: "cmd only", cmd: []string{"c", "d"}, want: []string{"c", "d"}},
		{name: "empty entrypoint reset", entrypoint: []string{""}, cmd: []string{"c"}, want: []string{"c"}},
		{name: "nothing", wantErr: true},
		{name: "entrypoint reset and no cmd", entrypoint: []string{""}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &runtime.ContainerConfig{Command: tc.command, Args: tc.args}
			got, err := Args(cfg, tc.entrypoint, tc.cmd)
			if tc.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("err = %v, want invalid argument", err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("Args = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestContainerProcess(t *testing.T) {
	stubHost(t, hostFacts{})
	for _, tc := range []struct {
		name    string
		change  func(*ContainerInput)
		env     []string
		cwd     string
		tty     bool
		noNewPr bool
	}{
		{
			name: "defaults",
			env:  []string{"PATH=/img/bin", "HOSTNAME=podhost", "IMG=1"},
			cwd:  "/",
		},
		{
			name: "config env overrides image env, image cwd",
			change: func(in *ContainerInput) {
				in.Config.Envs = []*runtime.KeyValue{{Key: "IMG", Value: []byte("2")}, {Key: "NEW", Value: []byte("a=b")}, {Key: "HOSTNAME", Value: []byte("mine")}}
				in.Image.WorkingDir = "/work"
			},
			env: []string{"PATH=/img/bin", "HOSTNAME=mine", "IMG=2", "NEW=a=b"},
			cwd: "/work",
		},
		{
			name: "config cwd, tty, no_new_privs, host's hostname",
			change: func(in *ContainerInput) {
				in.Config.WorkingDir = "/cfg"
				in.Image.WorkingDir = "/work"
				in.Config.Tty = true
				in.Config.Linux.SecurityContext.NoNewPrivs = true
				in.SandboxConfig.Hostname = ""
			},
			env:     []string{"PATH=/img/bin", "TERM=xterm", "HOSTNAME=node1", "IMG=1"},
			cwd:     "/cfg",
			tty:     true,
			noNewPr: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testContainer(t)
			if tc.change != nil {
				tc.change(&in)
			}
			s := mustContainer(t, in)
			p := s.Process
			if !slices.Equal(p.Args, []string{"/entry", "run"}) {
				t.Errorf("args = %q", p.Args)
			}
			if !slices.Equal(p.Env, tc.env) {
				t.Errorf("env = %q, want %q", p.Env, tc.env)
			}
			if p.Cwd != tc.cwd || p.Terminal != tc.tty || p.NoNewPrivileges != tc.noNewPr {
				t.Errorf("cwd %q tty %v nnp %v; want %q %v %v", p.Cwd, p.Terminal, p.NoNewPrivileges, tc.cwd, tc.tty, tc.noNewPr)
			}
			if p.Rlimits != nil || p.ApparmorProfile != "" || s.Linux.Seccomp != nil {
				t.Errorf("default rlimits/apparmor/seccomp kept: %v %q %v", p.Rlimits, p.ApparmorProfile, s.Linux.Seccomp)
			}
			if s.Root.Path != "rootfs" || s.Root.Readonly {
				t.Errorf("root = %+v", s.Root)
			}
			if findMount(s, "/run") != nil {
				t.Errorf("/run tmpfs kept")
			}
		})
	}
}

func TestContainerCDIRefused(t *testing.T) {
	stubHost(t, hostFacts{})
	in := testContainer(t)
	in.Config.CDIDevices = []*runtime.CDIDevice{{Name: "vendor.com/gpu=0"}}
	if _, err := Container(context.Background(), in); !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Fatalf("CDI device: %v", err)
	}
}

func TestContainerBadEnvAndNoCommand(t *testing.T) {
	stubHost(t, hostFacts{})
	in := testContainer(t)
	in.Config.Envs = []*runtime.KeyValue{{Key: "", Value: []byte("x")}}
	if _, err := Container(context.Background(), in); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("empty env name: %v", err)
	}
	in = testContainer(t)
	in.Image.Entrypoint, in.Image.Cmd = nil, nil
	if _, err := Container(context.Background(), in); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("no command: %v", err)
	}
}

func TestContainerMounts(t *testing.T) {
	host := t.TempDir()
	shared, slave, private := filepath.Join(host, "shared"), filepath.Join(host, "slave"), filepath.Join(host, "private")
	for _, d := range []string{shared, slave, private} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	stubHost(t, hostFacts{mounts: map[string][]string{
		"/":     nil,
		shared:  {"shared:5"},
		slave:   {"master:7"},
		private: nil,
	}})
	files := t.TempDir()
	writeFiles(t, files, map[string]string{"hostname": "podhost\n", "hosts": "", "resolv.conf": ""})
	shm := filepath.Join(files, "shm")
	if err := os.Mkdir(shm, 0o755); err != nil {
		t.Fatal(err)
	}
	withFiles := func(in *ContainerInput) {
		in.HostnamePath = filepath.Join(files, "hostname")
		in.HostsPath = filepath.Join(files, "hosts")
		in.ResolvPath = filepath.Join(files, "resolv.conf")
		in.ShmPath = shm
	}

	t.Run("propagation and read-only", func(t *testing.T) {
		in := testContainer(t)
		withFiles(&in)
		created := filepath.Join(host, "new", "dir")
		in.Config.Mounts = []*runtime.Mount{
			{ContainerPath: "/a/b/c", HostPath: private, Propagation: runtime.MountPropagation_PROPAGATION_PRIVATE},
			{ContainerPath: "/slave", HostPath: slave, Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER, Readonly: true},
			{ContainerPath: "/a", HostPath: shared, Propagation: runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL},
			{ContainerPath: "/made", HostPath: created},
		}
		s := mustContainer(t, in)
		for dst, want := range map[string][]string{
			"/a/b/c": {"rbind", "rprivate", "rw"},
			"/slave": {"rbind", "rslave", "ro"},
			"/a":     {"rbind", "rshared", "rw"},
			"/made":  {"rbind", "rprivate", "rw"},
		} {
			m := findMount(s, dst)
			if m == nil || m.Type != "bind" || !slices.Equal(m.Options, want) {
				t.Errorf("mount %s = %+v, want options %q", dst, m, want)
			}
		}
		if s.Linux.RootfsPropagation != "rshared" {
			t.Errorf("rootfs propagation %q, want rshared", s.Linux.RootfsPropagation)
		}
		if fi, err := os.Stat(created); err != nil || !fi.IsDir() {
			t.Errorf("missing host path not made: %v", err)
		}
		// Shallower destinations first.
		var order []string
		for _, m := range s.Mounts {
			if m.Type == "bind" {
				order = append(order, m.Destination)
			}
		}
		if slices.Index(order, "/a") > slices.Index(order, "/a/b/c") {
			t.Errorf("/a after /a/b/c: %q", order)
		}
		// The sandbox's files.
		for dst, src := range map[string]string{
			EtcHostname: in.HostnamePath, EtcHosts: in.HostsPath, ResolvConf: in.ResolvPath, DevShm: shm,
		} {
			m := findMount(s, dst)
			if m == nil || m.Source != src || !slices.Contains(m.Options, "rw") || countMounts(s, dst) != 1 {
				t.Errorf("sandbox file %s: %+v (%d mounts)", dst, m, countMounts(s, dst))
			}
		}
		cg := findMount(s, "/sys/fs/cgroup")
		if cg == nil || cg.Type != "cgroup" || !slices.Contains(cg.Options, "ro") {
			t.Errorf("cgroup mount %+v", cg)
		}
	})

	t.Run("container mounts override sandbox files and /dev", func(t *testing.T) {
		in := testContainer(t)
		withFiles(&in)
		in.Config.Linux.SecurityContext.ReadonlyRootfs = true
		in.Config.Mounts = []*runtime.Mount{
			{ContainerPath: "/etc/hosts/", HostPath: private, Readonly: true},
			{ContainerPath: "/dev", HostPath: private},
		}
		s := mustContainer(t, in)
		if m := findMount(s, "/etc/hosts/"); m == nil || m.Source != private || countMounts(s, EtcHosts) != 0 {
			t.Errorf("/etc/hosts not the container's: %+v", m)
		}
		if m := findMount(s, EtcHostname); m == nil || !slices.Contains(m.Options, "ro") {
			t.Errorf("hostname with read-only rootfs: %+v", m)
		}
		// The default mounts under /dev go; the sandbox's /dev/shm is
		// still mounted on the container's /dev, as in containerd.
		for _, m := range s.Mounts {
			if len(m.Destination) > 5 && m.Destination[:5] == "/dev/" && m.Destination != DevShm {
				t.Errorf("mount %s under a mounted /dev kept", m.Destination)
			}
		}
		if m := findMount(s, DevShm); m == nil || m.Source != shm {
			t.Errorf("/dev/shm %+v", m)
		}
		if !s.Root.Readonly {
			t.Errorf("root not read-only")
		}
	})

	t.Run("host IPC gets the host's /dev/shm, missing files skipped", func(t *testing.T) {
		in := testContainer(t)
		in.ShmPath = shm
		in.HostsPath = filepath.Join(files, "missing")
		in.Config.Linux.SecurityContext.NamespaceOptions.Ipc = runtime.NamespaceMode_NODE
		s := mustContainer(t, in)
		if m := findMount(s, DevShm); m == nil || m.Source != "/dev/shm" || m.Type != "bind" {
			t.Errorf("/dev/shm = %+v", m)
		}
		if findMount(s, EtcHosts) != nil {
			t.Errorf("missing hosts file mounted")
		}
	})

	t.Run("image volumes", func(t *testing.T) {
		in := testContainer(t)
		in.VolumesDir = t.TempDir()
		in.Image.Volumes = map[string]struct{}{"/data": {}, "rel": {}, "/covered": {}}
		in.Config.Mounts = []*runtime.Mount{{ContainerPath: "/covered", HostPath: private}}
		s := mustContainer(t, in)
		for _, dst := range []string{"/data", "/rel"} {
			m := findMount(s, dst)
			if m == nil || filepath.Dir(m.Source) != in.VolumesDir {
				t.Errorf("volume %s = %+v", dst, m)
			}
		}
		if m := findMount(s, "/covered"); m == nil || m.Source != private || countMounts(s, "/covered") != 1 {
			t.Errorf("covered volume %+v", m)
		}
		in.CRI.IgnoreImageDefinedVolumes = true
		s = mustContainer(t, in)
		if findMount(s, "/data") != nil {
			t.Errorf("ignore_image_defined_volumes: volume mounted")
		}
	})

	for _, tc := range []struct {
		name string
		m    *runtime.Mount
		rro  bool
		want string
	}{
		{name: "bidirectional on a private mount", m: &runtime.Mount{ContainerPath: "/x", HostPath: private, Propagation: runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL}, want: "not shared"},
		{name: "host-to-container on a private mount", m: &runtime.Mount{ContainerPath: "/x", HostPath: private, Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}, want: "neither"},
		{name: "rro unsupported", m: &runtime.Mount{ContainerPath: "/x", HostPath: private, Readonly: true, RecursiveReadOnly: true}, want: "does not support recursive read-only"},
		{name: "rro with rslave", rro: true, m: &runtime.Mount{ContainerPath: "/x", HostPath: slave, Readonly: true, RecursiveReadOnly: true, Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}, want: "needs private propagation"},
		{name: "rro writable", rro: true, m: &runtime.Mount{ContainerPath: "/x", HostPath: private, RecursiveReadOnly: true}, want: "conflicts"},
		{name: "relative container path", m: &runtime.Mount{ContainerPath: "x", HostPath: private}, want: "container path must be absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testContainer(t)
			in.RecursiveReadOnlyMounts = tc.rro
			in.Config.Mounts = []*runtime.Mount{tc.m}
			_, err := Container(context.Background(), in)
			errContains(t, err, tc.want)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("not invalid argument: %v", err)
			}
		})
	}

	t.Run("image volume", func(t *testing.T) {
		// The runtime service mounts the image and sets host_path; an
		// image volume without one was not prepared.
		in := testContainer(t)
		in.Config.Mounts = []*runtime.Mount{{ContainerPath: "/img", Image: &runtime.ImageSpec{Image: "busybox"}, Readonly: true}}
		if _, err := Container(context.Background(), in); !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Fatalf("unprepared: err %v, want failed precondition", err)
		}
		dir := t.TempDir()
		in.Config.Mounts[0].HostPath = dir
		in.Config.Mounts[0].Readonly = false
		if _, err := Container(context.Background(), in); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("writable: err %v, want invalid argument", err)
		}
		in.Config.Mounts[0].HostPath = filepath.Join(dir, "gone")
		in.Config.Mounts[0].Readonly = true
		if _, err := Container(context.Background(), in); err == nil {
			t.Fatal("missing host path accepted")
		}
		if _, err := os.Stat(filepath.Join(dir, "gone")); err == nil {
			t.Error("a missing image volume's host path was made")
		}
		in.Config.Mounts[0].HostPath = dir
		s, err := Container(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		m := findMount(s, "/img")
		if m == nil || m.Source != dir || m.Type != "bind" || !slices.Contains(m.Options, "ro") || slices.Contains(m.Options, "rw") {
			t.Fatalf("mount %+v", m)
		}
	})

	t.Run("rro", func(t *testing.T) {
		in := testContainer(t)
		in.RecursiveReadOnlyMounts = true
		in.Config.Mounts = []*runtime.Mount{{ContainerPath: "/x", HostPath: private, Readonly: true, RecursiveReadOnly: true}}
		s := mustContainer(t, in)
		if m := findMount(s, "/x"); m == nil || !slices.Equal(m.Options, []string{"rbind", "rprivate", "rro"}) {
			t.Errorf("rro mount %+v", m)
		}
	})
}

func TestContainerDevices(t *testing.T) {
	stubHost(t, hostFacts{})
	link := filepath.Join(t.TempDir(), "null-link")
	if err := os.Symlink("/dev/null", link); err != nil {
		t.Fatal(err)
	}
	in := testContainer(t)
	in.CRI.DeviceOwnershipFromSecurityContext = true
	in.Config.Linux.SecurityContext.RunAsUser = &runtime.Int64Value{Value: 1000}
	in.Config.Linux.SecurityContext.RunAsGroup = &runtime.Int64Value{Value: 1002}
	in.Config.Devices = []*runtime.Device{{HostPath: link, ContainerPath: "/dev/mynull", Permissions: "rw"}}
	s := mustContainer(t, in)
	if len(s.Linux.Devices) != 1 {
		t.Fatalf("devices %+v", s.Linux.Devices)
	}
	d := s.Linux.Devices[0]
	if d.Path != "/dev/mynull" || d.Type != "c" || d.Major != 1 || d.Minor != 3 || *d.UID != 1000 || *d.GID != 1002 {
		t.Errorf("device %+v uid %d gid %d", d, *d.UID, *d.GID)
	}
	rules := s.Linux.Resources.Devices
	last := rules[len(rules)-1]
	if rules[0].Allow || !last.Allow || last.Type != "c" || *last.Major != 1 || *last.Minor != 3 || last.Access != "rw" {
		t.Errorf("cgroup rules %+v", rules)
	}

	for _, dev := range []*runtime.Device{
		{HostPath: "/dev/null", ContainerPath: "/dev/x", Permissions: "rwx"},
		{HostPath: "/nonexistent/dev", ContainerPath: "/dev/x", Permissions: "rwm"},
		{HostPath: "/etc/hostname", ContainerPath: "/dev/x", Permissions: "r"},
	} {
		in := testContainer(t)
		in.Config.Devices = []*runtime.Device{dev}
		if _, err := Container(context.Background(), in); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("device %+v: err %v, want invalid argument", dev, err)
		}
	}
}

func TestContainerPrivileged(t *testing.T) {
	stubHost(t, hostFacts{})
	current, err := oci.CurrentCapabilities()
	if err != nil {
		t.Fatal(err)
	}
	hostDevs, err := oci.HostDevices()
	if err != nil {
		t.Fatal(err)
	}
	priv := func(in *ContainerInput) {
		in.SandboxConfig.Linux.SecurityContext.Privileged = true
		in.Config.Linux.SecurityContext.Privileged = true
		in.Config.Linux.SecurityContext.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
		in.Config.Linux.SecurityContext.MaskedPaths = []string{"/proc/kcore"}
		in.Config.Linux.SecurityContext.ReadonlyPaths = []string{"/proc/sys"}
	}
	for _, tc := range []struct {
		name           string
		withoutHostDev bool
		allAllowed     bool
		wantHostDevs   bool
		wantAllAllowed bool
	}{
		{name: "host devices", wantHostDevs: true, wantAllAllowed: true},
		{name: "privileged_without_host_devices", withoutHostDev: true},
		{name: "without host devices, all allowed", withoutHostDev: true, allAllowed: true, wantAllAllowed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testContainer(t)
			priv(&in)
			in.Runtime.PrivilegedWithoutHostDevices = tc.withoutHostDev
			in.Runtime.PrivilegedWithoutHostDevicesAllDevicesAllowed = tc.allAllowed
			s := mustContainer(t, in)
			if !slices.Equal(s.Process.Capabilities.Bounding, current) || !slices.Equal(s.Process.Capabilities.Effective, current) {
				t.Errorf("caps %q, want the daemon's %q", s.Process.Capabilities.Bounding, current)
			}
			if len(s.Linux.MaskedPaths) != 0 || len(s.Linux.ReadonlyPaths) != 0 {
				t.Errorf("masked %q readonly %q", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
			}
			if s.Linux.Seccomp != nil {
				t.Errorf("privileged container has seccomp")
			}
			if sys := findMount(s, "/sys"); sys == nil || slices.Contains(sys.Options, "ro") {
				t.Errorf("sysfs %+v", sys)
			}
			if cg := findMount(s, "/sys/fs/cgroup"); cg == nil || !slices.Contains(cg.Options, "rw") || slices.Contains(cg.Options, "ro") {
				t.Errorf("cgroupfs %+v", cg)
			}
			if _, ok := nsOf(s, specs.CgroupNamespace); ok {
				t.Errorf("privileged container has a cgroup namespace")
			}
			if got := len(s.Linux.Devices) > 0; got != (tc.wantHostDevs && len(hostDevs) > 0) {
				t.Errorf("host devices: %d", len(s.Linux.Devices))
			}
			all := len(s.Linux.Resources.Devices) == 1 && s.Linux.Resources.Devices[0].Allow && s.Linux.Resources.Devices[0].Major == nil
			if all != tc.wantAllAllowed {
				t.Errorf("device rules %+v", s.Linux.Resources.Devices)
			}
		})
	}
	t.Run("not in an unprivileged pod", func(t *testing.T) {
		in := testContainer(t)
		in.Config.Linux.SecurityContext.Privileged = true
		_, err := Container(context.Background(), in)
		errContains(t, err, "no privileged container allowed")
	})
}

func TestContainerCapabilities(t *testing.T) {
	stubHost(t, hostFacts{})
	defaults := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}
	for _, tc := range []struct {
		name      string
		add, drop []string
		want      []string
	}{
		{name: "none", want: defaults},
		{name: "add and drop", add: []string{"sys_admin", "NET_ADMIN"}, drop: []string{"CHOWN", "kill"}, want: append(slices.DeleteFunc(slices.Clone(defaults), func(c string) bool { return c == "CAP_CHOWN" || c == "CAP_KILL" }), "CAP_SYS_ADMIN", "CAP_NET_ADMIN")},
		{name: "add ALL drop one", add: []string{"ALL"}, drop: []string{"CHOWN"}, want: []string{"CAP_KILL", "CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_SYS_TIME"}},
		{name: "drop ALL add one", add: []string{"NET_ADMIN"}, drop: []string{"all"}, want: []string{"CAP_NET_ADMIN"}},
		{name: "drop ALL", drop: []string{"ALL"}, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testContainer(t)
			if tc.add != nil || tc.drop != nil {
				in.Config.Linux.SecurityContext.Capabilities = &runtime.Capability{AddCapabilities: tc.add, DropCapabilities: tc.drop}
			}
			s := mustContainer(t, in)
			c := s.Process.Capabilities
			for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted} {
				if !slices.Equal(sorted(set), sorted(tc.want)) {
					t.Errorf("%s = %q, want %q", name, set, tc.want)
				}
			}
			if len(c.Ambient) != 0 {
				t.Errorf("ambient %q", c.Ambient)
			}
		})
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestContainerUser(t *testing.T) {
	stubHost(t, hostFacts{})
	i64 := func(v int64) *runtime.Int64Value { return &runtime.Int64Value{Value: v} }
	for _, tc := range []struct {
		name     string
		sc       *runtime.LinuxContainerSecurityContext
		image    string
		noRootfs bool
		uid, gid uint32
		groups   []uint32
		err      string
	}{
		{name: "root by default", uid: 0, gid: 0, groups: []uint32{0}},
		{name: "run_as_user looks the gid up", sc: &runtime.LinuxContainerSecurityContext{RunAsUser: i64(1000)}, uid: 1000, gid: 1000, groups: []uint32{10, 1000, 50000}},
		{name: "run_as_user and run_as_group", sc: &runtime.LinuxContainerSecurityContext{RunAsUser: i64(1001), RunAsGroup: i64(7)}, uid: 1001, gid: 7, groups: []uint32{7, 10}},
		{name: "run_as_username", sc: &runtime.LinuxContainerSecurityContext{RunAsUsername: "bob"}, uid: 1001, gid: 1002, groups: []uint32{10, 1002}},
		{name: "unknown uid is gid 0", sc: &runtime.LinuxContainerSecurityContext{RunAsUser: i64(4242)}, uid: 4242, gid: 0, groups: []uint32{0}},
		{name: "image user name:group", image: "alice:bobs", uid: 1000, gid: 1002, groups: []uint32{10, 1002, 50000}},
		{name: "run_as_user overrides image user", image: "alice", sc: &runtime.LinuxContainerSecurityContext{RunAsUser: i64(1001)}, uid: 1001, gid: 1002, groups: []uint32{10, 1002}},
		{name: "merge with supplemental groups", sc: &runtime.LinuxContainerSecurityContext{RunAsUser: i64(1000), SupplementalGroups: []int64{1234}}, uid: 1000, gid: 1000, groups: []uint32{10, 1000, 1234, 50000}},
		{name: "strict", sc: &runtime.LinuxContainerSecurityContext{RunAsUser: i64(1000), SupplementalGroups: []int64{1234}, SupplementalGroupsPolicy: runtime.SupplementalGroupsPolicy_Strict}, uid: 1000, gid: 1000, groups: []uint32{1000, 1234}},
		{name: "numeric without rootfs", noRootfs: true, sc: &runtime.LinuxContainerSecurityContext{RunAsUser: i64(5), SupplementalGroups: []int64{9}}, uid: 5, gid: 0, groups: []uint32{0, 9}},
		{name: "unknown user name", sc: &runtime.LinuxContainerSecurityContext{RunAsUsername: "carol"}, err: "no users found"},
		{name: "unknown group name", image: "alice:nogroup", err: "no groups found"},
		{name: "group without user", sc: &runtime.LinuxContainerSecurityContext{RunAsGroup: i64(5)}, err: "without run_as_user"},
		{name: "name without rootfs", noRootfs: true, image: "alice", err: "needs the root filesystem"},
		{name: "negative uid without rootfs", noRootfs: true, sc: &runtime.LinuxContainerSecurityContext{RunAsUser: i64(-1)}, err: "out of range"},
		{name: "negative uid", sc: &runtime.LinuxContainerSecurityContext{RunAsUser: i64(-1)}, err: "out of range"},
		{name: "bad policy", sc: &runtime.LinuxContainerSecurityContext{SupplementalGroupsPolicy: 7}, err: "supplemental groups policy"},
		{name: "negative supplemental group", sc: &runtime.LinuxContainerSecurityContext{SupplementalGroups: []int64{-1}}, err: "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testContainer(t)
			sc := tc.sc
			if sc == nil {
				sc = &runtime.LinuxContainerSecurityContext{}
			}
			sc.NamespaceOptions = in.Config.Linux.SecurityContext.NamespaceOptions
			in.Config.Linux.SecurityContext = sc
			in.Image.User = tc.image
			if tc.noRootfs {
				in.Rootfs = nil
			}
			s, err := Container(context.Background(), in)
			if tc.err != "" {
				errContains(t, err, tc.err)
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Errorf("not invalid argument: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			u := s.Process.User
			if u.UID != tc.uid || u.GID != tc.gid || !slices.Equal(u.AdditionalGids, tc.groups) {
				t.Errorf("user %d:%d %v, want %d:%d %v", u.UID, u.GID, u.AdditionalGids, tc.uid, tc.gid, tc.groups)
			}
		})
	}
}

func TestContainerSeccomp(t *testing.T) {
	stubHost(t, hostFacts{})
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"oci.json":     `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod","fchmodat"],"action":"SCMP_ACT_ERRNO"}]}`,
		"docker.json":  `{"defaultAction":"SCMP_ACT_ERRNO","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]},{"architecture":"SCMP_ARCH_AARCH64","subArchitectures":["SCMP_ARCH_ARM"]}],"syscalls":[{"name":"read","action":"SCMP_ACT_ALLOW"},{"names":["sethostname"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}}]}`,
		"broken.json":  `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [`,
		"both.json":    `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ERRNO"}]}`,
		"notjson.json": "hello",
	})
	lh := func(name string) *runtime.SecurityProfile {
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: filepath.Join(dir, name)}
	}
	for _, tc := range []struct {
		name       string
		sp         *runtime.SecurityProfile
		deprecated string
		unset      string
		want       func(*testing.T, *specs.LinuxSeccomp)
		err        string
	}{
		{name: "unset is unconfined", want: wantNoSeccomp},
		{name: "unset_seccomp_profile", unset: "runtime/default", want: wantDefaultSeccomp},
		{name: "unconfined", sp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}, unset: "runtime/default", want: wantNoSeccomp},
		{name: "runtime/default", sp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}, want: wantDefaultSeccomp},
		{name: "deprecated docker/default", deprecated: "docker/default", want: wantDefaultSeccomp},
		{name: "deprecated localhost", deprecated: "localhost/" + filepath.Join(dir, "oci.json"), want: wantChmodBlocked},
		{name: "localhost OCI format", sp: lh("oci.json"), want: wantChmodBlocked},
		{name: "localhost docker format", sp: lh("docker.json"), want: func(t *testing.T, p *specs.LinuxSeccomp) {
			if p == nil || p.DefaultAction != specs.ActErrno || len(p.Syscalls) != 1 || p.Syscalls[0].Names[0] != "read" {
				t.Errorf("docker profile (no CAP_SYS_ADMIN) = %+v", p)
			}
			if len(p.Architectures) != 2 {
				t.Errorf("architectures %v", p.Architectures)
			}
		}},
		{name: "malformed localhost", sp: lh("broken.json"), err: "broken.json"},
		{name: "name and names", sp: lh("both.json"), err: "both 'name' and 'names'"},
		{name: "not JSON", sp: lh("notjson.json"), err: "notjson.json"},
		{name: "missing localhost", sp: lh("missing.json"), err: "no such file"},
		{name: "relative localhost", sp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "prof.json"}, err: "absolute path"},
		{name: "localhost ref on another type", sp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault, LocalhostRef: "/x"}, err: "only for profile type Localhost"},
		{name: "bad deprecated name", deprecated: "myprofile", err: "invalid seccomp profile"},
		{name: "directory", sp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: dir}, err: "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testContainer(t)
			in.CRI.UnsetSeccompProfile = tc.unset
			in.Config.Linux.SecurityContext.Seccomp = tc.sp
			//lint:ignore SA1019 the deprecated field is still sent by older kubelets
			in.Config.Linux.SecurityContext.SeccompProfilePath = tc.deprecated
			s, err := Container(context.Background(), in)
			if tc.err != "" {
				errContains(t, err, tc.err)
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Errorf("not invalid argument: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkJSON(t, s)
			tc.want(t, s.Linux.Seccomp)
		})
	}
}

func wantNoSeccomp(t *testing.T, p *specs.LinuxSeccomp) {
	t.Helper()
	if p != nil {
		t.Errorf("seccomp %+v, want none", p.DefaultAction)
	}
}

func wantDefaultSeccomp(t *testing.T, p *specs.LinuxSeccomp) {
	t.Helper()
	if p == nil || p.DefaultAction != specs.ActErrno || len(p.Syscalls) < 10 {
		t.Fatalf("default profile %+v", p)
	}
	// The default profile allows what the default capabilities need and
	// not what they do not: no mount without CAP_SYS_ADMIN.
	allowed := map[string]bool{}
	for _, sc := range p.Syscalls {
		if sc.Action == specs.ActAllow && len(sc.Args) == 0 {
			for _, n := range sc.Names {
				allowed[n] = true
			}
		}
	}
	if !allowed["read"] || !allowed["chown"] || allowed["mount"] {
		t.Errorf("default profile: read %v chown %v mount %v", allowed["read"], allowed["chown"], allowed["mount"])
	}
}

func wantChmodBlocked(t *testing.T, p *specs.LinuxSeccomp) {
	t.Helper()
	want := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"chmod", "fchmodat"}, Action: specs.ActErrno}}}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("profile %+v, want %+v", p, want)
	}
}

func TestContainerAppArmor(t *testing.T) {
	stubHost(t, hostFacts{})
	for _, tc := range []struct {
		name       string
		sp         *runtime.SecurityProfile
		deprecated string
		ok         bool
	}{
		{name: "unset", ok: true},
		{name: "unconfined", sp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}, ok: true},
		{name: "deprecated unconfined", deprecated: "unconfined", ok: true},
		{name: "runtime default", sp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}},
		{name: "localhost", sp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "myprof"}},
		{name: "deprecated runtime/default", deprecated: "runtime/default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testContainer(t)
			in.Config.Linux.SecurityContext.Apparmor = tc.sp
			//lint:ignore SA1019 the deprecated field is still sent by older kubelets
			in.Config.Linux.SecurityContext.ApparmorProfile = tc.deprecated
			s, err := Container(context.Background(), in)
			if tc.ok {
				if err != nil || s.Process.ApparmorProfile != "" {
					t.Fatalf("err %v profile %q", err, s.Process.ApparmorProfile)
				}
				return
			}
			errContains(t, err, "does not support AppArmor")
			if !errors.Is(err, errdefs.ErrNotImplemented) {
				t.Errorf("not 'not implemented': %v", err)
			}
		})
	}
}

func TestContainerMaskedPaths(t *testing.T) {
	stubHost(t, hostFacts{})
	for _, tc := range []struct {
		name             string
		masked, readonly []string
		disable          bool
		wantM, wantR     []string
		defaults         bool
	}{
		{name: "given", masked: []string{"/proc/kcore", "/bin/ls"}, readonly: []string{"/tmp"}, wantM: []string{"/proc/kcore", "/bin/ls"}, wantR: []string{"/tmp"}},
		{name: "none (unmasked)", wantM: []string{}, wantR: []string{}},
		{name: "disable_proc_mount keeps the defaults", disable: true, masked: []string{"/x"}, defaults: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testContainer(t)
			in.CRI.DisableProcMount = tc.disable
			in.Config.Linux.SecurityContext.MaskedPaths = tc.masked
			in.Config.Linux.SecurityContext.ReadonlyPaths = tc.readonly
			s := mustContainer(t, in)
			if tc.defaults {
				if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") || slices.Contains(s.Linux.MaskedPaths, "/x") {
					t.Errorf("masked %q readonly %q", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
				}
				return
			}
			if !slices.Equal(s.Linux.MaskedPaths, tc.wantM) || !slices.Equal(s.Linux.ReadonlyPaths, tc.wantR) {
				t.Errorf("masked %q readonly %q", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
			}
		})
	}
}

func TestContainerNamespaces(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cg2     bool
		pid     runtime.NamespaceMode
		target  string
		tpid    uint32
		wantPid string // "" own namespace
		err     string
	}{
		{name: "own pid, cgroup v1", pid: runtime.NamespaceMode_CONTAINER},
		{name: "pod pid, cgroup v2", cg2: true, pid: runtime.NamespaceMode_POD, wantPid: "/proc/42/ns/pid"},
		{name: "host pid", pid: runtime.NamespaceMode_NODE, wantPid: "/proc/42/ns/pid"},
		{name: "target pid", pid: runtime.NamespaceMode_TARGET, target: "other", tpid: 77, wantPid: "/proc/77/ns/pid"},
		{name: "target without pid", pid: runtime.NamespaceMode_TARGET, target: "other", err: "needs a running target"},
		{name: "bad mode", pid: 9, err: "pid namespace mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stubHost(t, hostFacts{cgroup2: tc.cg2})
			in := testContainer(t)
			in.TargetPid = tc.tpid
			in.Config.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{Pid: tc.pid, TargetId: tc.target}
			s, err := Container(context.Background(), in)
			if tc.err != "" {
				errContains(t, err, tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for typ, want := range map[specs.LinuxNamespaceType]string{
				specs.NetworkNamespace: "/proc/42/ns/net", specs.IPCNamespace: "/proc/42/ns/ipc", specs.UTSNamespace: "/proc/42/ns/uts",
			} {
				if n, ok := nsOf(s, typ); !ok || n.Path != want {
					t.Errorf("%s namespace %+v", typ, n)
				}
			}
			if n, ok := nsOf(s, specs.PIDNamespace); !ok || n.Path != tc.wantPid {
				t.Errorf("pid namespace %+v, want path %q", n, tc.wantPid)
			}
			if n, ok := nsOf(s, specs.MountNamespace); !ok || n.Path != "" {
				t.Errorf("mount namespace %+v", n)
			}
			if _, ok := nsOf(s, specs.CgroupNamespace); ok != tc.cg2 {
				t.Errorf("cgroup namespace %v on cgroup v2 %v", ok, tc.cg2)
			}
			if _, ok := nsOf(s, specs.UserNamespace); ok {
				t.Errorf("user namespace without userns options")
			}
		})
	}
	t.Run("sandbox not running", func(t *testing.T) {
		stubHost(t, hostFacts{})
		in := testContainer(t)
		in.SandboxPid = 0
		if _, err := Container(context.Background(), in); !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Fatalf("err %v", err)
		}
	})
}

func TestContainerUserNamespace(t *testing.T) {
	stubHost(t, hostFacts{})
	userns := func() *runtime.UserNamespace {
		return &runtime.UserNamespace{
			Mode: runtime.NamespaceMode_POD,
			Uids: []*runtime.IDMapping{{HostId: 100000, ContainerId: 0, Length: 65536}},
			Gids: []*runtime.IDMapping{{HostId: 200000, ContainerId: 0, Length: 65536}},
		}
	}
	files := t.TempDir()
	writeFiles(t, files, map[string]string{"hosts": ""})

	in := testContainer(t)
	in.HostsPath = filepath.Join(files, "hosts")
	in.SandboxConfig.Linux.SecurityContext.NamespaceOptions.UsernsOptions = userns()
	in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = userns()
	s := mustContainer(t, in)
	if n, ok := nsOf(s, specs.UserNamespace); !ok || n.Path != "/proc/42/ns/user" {
		t.Errorf("user namespace %+v", n)
	}
	wantU := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	wantG := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
	if !reflect.DeepEqual(s.Linux.UIDMappings, wantU) || !reflect.DeepEqual(s.Linux.GIDMappings, wantG) {
		t.Errorf("mappings %+v %+v", s.Linux.UIDMappings, s.Linux.GIDMappings)
	}
	if m := findMount(s, EtcHosts); m == nil || !reflect.DeepEqual(m.UIDMappings, wantU) {
		t.Errorf("hosts mount not id-mapped: %+v", m)
	}
	if sys := findMount(s, "/sys"); sys == nil || sys.Type != "sysfs" {
		t.Errorf("/sys %+v", sys)
	}

	// Host network and a user namespace: /sys is a bind mount.
	in.SandboxConfig.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
	s = mustContainer(t, in)
	if sys := findMount(s, "/sys"); sys == nil || sys.Type != "bind" || countMounts(s, "/sys") != 1 {
		t.Errorf("/sys with host network %+v", sys)
	}

	for name, change := range map[string]func(*ContainerInput){
		"differs from the pod's": func(in *ContainerInput) {
			in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions.Uids[0].HostId = 1
		},
		"pod has none": func(in *ContainerInput) {
			in.SandboxConfig.Linux.SecurityContext.NamespaceOptions.UsernsOptions = nil
		},
		"two mappings": func(in *ContainerInput) {
			u := in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions
			u.Uids = append(u.Uids, u.Uids[0])
		},
		"no mappings": func(in *ContainerInput) {
			in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions.Gids = nil
		},
		"node mode with mappings": func(in *ContainerInput) {
			in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions.Mode = runtime.NamespaceMode_NODE
		},
	} {
		t.Run(name, func(t *testing.T) {
			in := testContainer(t)
			in.SandboxConfig.Linux.SecurityContext.NamespaceOptions.UsernsOptions = userns()
			in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = userns()
			change(&in)
			if _, err := Container(context.Background(), in); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err %v, want invalid argument", err)
			}
		})
	}
}

func TestContainerResourcesAndOOM(t *testing.T) {
	for _, tc := range []struct {
		name     string
		restrict bool
		adj      int64
		daemon   int
		wantAdj  int
	}{
		{name: "as asked", adj: -500, daemon: 0, wantAdj: -500},
		{name: "restricted to the daemon's", restrict: true, adj: -500, daemon: -100, wantAdj: -100},
		{name: "restricted, higher kept", restrict: true, adj: 900, daemon: -100, wantAdj: 900},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stubHost(t, hostFacts{swap: true, oomScoreAdj: tc.daemon})
			in := testContainer(t)
			in.CRI.RestrictOOMScoreAdj = tc.restrict
			in.Config.Linux.Resources = &runtime.LinuxContainerResources{
				CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, CpusetCpus: "0", CpusetMems: "0",
				MemoryLimitInBytes: 64 << 20, OomScoreAdj: tc.adj,
			}
			in.SandboxConfig.Linux.CgroupParent = "/kubepods/pod1"
			in.CgroupsPath = CgroupsPath(in.SandboxConfig.Linux.CgroupParent, in.ID, false)
			s := mustContainer(t, in)
			if s.Process.OOMScoreAdj == nil || *s.Process.OOMScoreAdj != tc.wantAdj {
				t.Errorf("oom_score_adj %v, want %d", s.Process.OOMScoreAdj, tc.wantAdj)
			}
			r := s.Linux.Resources
			if *r.CPU.Period != 100000 || *r.CPU.Quota != 50000 || *r.CPU.Shares != 512 || r.CPU.Cpus != "0" || r.CPU.Mems != "0" ||
				*r.Memory.Limit != 64<<20 || *r.Memory.Swap != 64<<20 {
				t.Errorf("resources %+v %+v", r.CPU, r.Memory)
			}
			if len(r.Devices) == 0 || r.Devices[0].Allow {
				t.Errorf("default deny-all device rule lost: %+v", r.Devices)
			}
			if s.Linux.CgroupsPath != "/kubepods/pod1/ctr1" {
				t.Errorf("cgroups path %q", s.Linux.CgroupsPath)
			}
		})
	}
	t.Run("no resources, default cgroup", func(t *testing.T) {
		stubHost(t, hostFacts{})
		s := mustContainer(t, testContainer(t))
		if s.Process.OOMScoreAdj != nil || s.Linux.CgroupsPath != "/k8s.io/ctr1" {
			t.Errorf("oom %v cgroup %q", s.Process.OOMScoreAdj, s.Linux.CgroupsPath)
		}
	})
}

func TestContainerAnnotations(t *testing.T) {
	stubHost(t, hostFacts{})
	s := mustContainer(t, testContainer(t))
	want := map[string]string{
		AnnotationContainerType:    ContainerTypeContainer,
		AnnotationContainerName:    "app",
		AnnotationSandboxID:        "sb1",
		AnnotationSandboxName:      "pod",
		AnnotationSandboxNamespace: "ns",
		AnnotationSandboxUID:       "pod-uid",
		AnnotationImageName:        "docker.io/library/busybox:latest",
		"pass.example.com/a":       "1",
		"ctr.example.com/x":        "y",
	}
	if !reflect.DeepEqual(s.Annotations, want) {
		t.Errorf("annotations %v\nwant %v", s.Annotations, want)
	}
}

func TestContainerBaseRuntimeSpec(t *testing.T) {
	stubHost(t, hostFacts{})
	base := filepath.Join(t.TempDir(), "base.json")
	writeFiles(t, filepath.Dir(base), map[string]string{"base.json": `{"ociVersion":"1.2.0","process":{"cwd":"/","rlimits":[{"type":"RLIMIT_NOFILE","hard":4096,"soft":4096}]},"root":{"path":"x"},"linux":{"cgroupsPath":"/whatever"}}`})
	in := testContainer(t)
	in.Runtime.BaseRuntimeSpec = base
	s := mustContainer(t, in)
	if len(s.Process.Rlimits) != 1 || s.Process.Rlimits[0].Hard != 4096 {
		t.Errorf("base spec's rlimits not kept: %+v", s.Process.Rlimits)
	}
	if s.Linux.CgroupsPath != "/k8s.io/ctr1" || s.Root.Path != "rootfs" {
		t.Errorf("cgroups %q root %q", s.Linux.CgroupsPath, s.Root.Path)
	}
	in.Runtime.BaseRuntimeSpec = filepath.Join(t.TempDir(), "missing.json")
	_, err := Container(context.Background(), in)
	errContains(t, err, "base_runtime_spec")
}
