package spec

import (
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/errdefs"
)

func TestResources(t *testing.T) {
	full := &runtime.LinuxContainerResources{
		CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 1024, CpusetCpus: "0-1", CpusetMems: "0",
		MemoryLimitInBytes: 128 << 20,
		HugepageLimits:     []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 4 << 20}},
		Unified:            map[string]string{"memory.high": "100000000"},
	}
	u64 := func(v uint64) *uint64 { return &v }
	i64 := func(v int64) *int64 { return &v }
	for _, tc := range []struct {
		name    string
		facts   hostFacts
		r       *runtime.LinuxContainerResources
		cfg     func(*config.Config)
		want    *specs.LinuxResources
		wantErr error
	}{
		{name: "nil", r: nil, want: nil},
		{name: "zero values unset", r: &runtime.LinuxContainerResources{}, want: &specs.LinuxResources{CPU: &specs.LinuxCPU{}, Memory: &specs.LinuxMemory{}}},
		{
			name: "cgroup v1, swap, hugetlb disabled by default", facts: hostFacts{swap: true, hugetlb: true}, r: full,
			want: &specs.LinuxResources{
				CPU:    &specs.LinuxCPU{Period: u64(100000), Quota: i64(50000), Shares: u64(1024), Cpus: "0-1", Mems: "0"},
				Memory: &specs.LinuxMemory{Limit: i64(128 << 20), Swap: i64(128 << 20)},
			},
		},
		{
			name: "cgroup v2, hugetlb on, no swap controller", facts: hostFacts{cgroup2: true, hugetlb: true}, r: full,
			cfg: func(c *config.Config) { c.DisableHugetlbController = false },
			want: &specs.LinuxResources{
				CPU:            &specs.LinuxCPU{Period: u64(100000), Quota: i64(50000), Shares: u64(1024), Cpus: "0-1", Mems: "0"},
				Memory:         &specs.LinuxMemory{Limit: i64(128 << 20)},
				HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}},
				Unified:        map[string]string{"memory.high": "100000000"},
			},
		},
		{
			name: "explicit swap", facts: hostFacts{swap: true},
			r:    &runtime.LinuxContainerResources{MemoryLimitInBytes: 100, MemorySwapLimitInBytes: 300},
			want: &specs.LinuxResources{CPU: &specs.LinuxCPU{}, Memory: &specs.LinuxMemory{Limit: i64(100), Swap: i64(300)}},
		},
		{
			name: "hugetlb missing, tolerated", r: &runtime.LinuxContainerResources{HugepageLimits: full.HugepageLimits},
			cfg:  func(c *config.Config) { c.DisableHugetlbController = false },
			want: &specs.LinuxResources{CPU: &specs.LinuxCPU{}, Memory: &specs.LinuxMemory{}},
		},
		{
			name: "hugetlb missing, not tolerated", r: &runtime.LinuxContainerResources{HugepageLimits: full.HugepageLimits},
			cfg:     func(c *config.Config) { c.DisableHugetlbController, c.TolerateMissingHugetlbController = false, false },
			want:    &specs.LinuxResources{CPU: &specs.LinuxCPU{}, Memory: &specs.LinuxMemory{}},
			wantErr: ErrHugetlbMissing,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stubHost(t, tc.facts)
			cfg := config.Default()
			if tc.cfg != nil {
				tc.cfg(cfg)
			}
			got, err := ContainerResources(tc.r, cfg)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ContainerResources = %+v\nwant %+v", got, tc.want)
			}
			// Resources never fails: what cannot be applied is left out.
			if got := Resources(tc.r, cfg); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Resources = %+v", got)
			}
		})
	}
}

func TestOOMScoreAdj(t *testing.T) {
	stubHost(t, hostFacts{oomScoreAdj: -200})
	for _, tc := range []struct {
		adj      int
		restrict bool
		want     int
	}{
		{-998, false, -998}, {-998, true, -200}, {-100, true, -100}, {1000, true, 1000},
	} {
		if got, err := OOMScoreAdj(tc.adj, tc.restrict); err != nil || got != tc.want {
			t.Errorf("OOMScoreAdj(%d, %v) = %d, %v; want %d", tc.adj, tc.restrict, got, err, tc.want)
		}
	}
}

func TestExecProcess(t *testing.T) {
	adj := 5
	base := &specs.Spec{Process: &specs.Process{
		Args:            []string{"/app"},
		Env:             []string{"PATH=/bin", "A=1"},
		Cwd:             "/work",
		User:            specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 10}},
		Capabilities:    &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}, Effective: []string{"CAP_KILL"}},
		NoNewPrivileges: true,
		OOMScoreAdj:     &adj,
		ConsoleSize:     &specs.Box{Height: 1, Width: 2},
		Terminal:        true,
	}}
	p, err := ExecProcess(base, []string{"sh", "-c", "id"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Args, []string{"sh", "-c", "id"}) || p.Terminal || p.ConsoleSize != nil || p.Cwd != "/work" ||
		p.User.UID != 1000 || !slices.Equal(p.User.AdditionalGids, []uint32{1000, 10}) || !p.NoNewPrivileges ||
		!slices.Equal(p.Env, base.Process.Env) || !slices.Equal(p.Capabilities.Effective, []string{"CAP_KILL"}) {
		t.Errorf("exec process %+v", p)
	}
	// A deep copy: changing it leaves the container's spec alone.
	p.Env[0] = "changed"
	p.Capabilities.Effective[0] = "changed"
	p.User.AdditionalGids[0] = 0
	*p.OOMScoreAdj = 0
	if base.Process.Env[0] != "PATH=/bin" || base.Process.Capabilities.Effective[0] != "CAP_KILL" || base.Process.User.AdditionalGids[0] != 1000 || adj != 5 {
		t.Errorf("ExecProcess shares memory with the base spec")
	}

	p, err = ExecProcess(base, []string{"sh"}, true)
	if err != nil || !p.Terminal || !slices.Equal(p.Env, []string{"PATH=/bin", "A=1", "TERM=xterm"}) {
		t.Errorf("tty exec %+v, %v", p, err)
	}
	if _, err := ExecProcess(base, nil, false); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("empty cmd: %v", err)
	}
	if _, err := ExecProcess(&specs.Spec{}, []string{"sh"}, false); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("no process: %v", err)
	}
}

func TestCgroupsPath(t *testing.T) {
	for _, tc := range []struct {
		parent  string
		systemd bool
		want    string
	}{
		{"/kubepods/burstable/pod1", false, "/kubepods/burstable/pod1/c1"},
		{"kubepods/pod1/", false, "kubepods/pod1/c1"},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice", true, "kubepods-burstable-pod1.slice:cri-containerd:c1"},
		{"kubepods-pod1.slice", false, "kubepods-pod1.slice:cri-containerd:c1"},
		{"", false, ""},
		{"", true, ":cri-containerd:c1"},
	} {
		if got := CgroupsPath(tc.parent, "c1", tc.systemd); got != tc.want {
			t.Errorf("CgroupsPath(%q, %v) = %q, want %q", tc.parent, tc.systemd, got, tc.want)
		}
	}
}

func TestFindMountInfo(t *testing.T) {
	const mountinfo = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:26 / /sys/fs/cgroup ro,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
40 22 8:1 /data /mnt/with\040space rw master:3 - ext4 /dev/sda1 rw
41 22 8:1 /data /mnt/priv rw - ext4 /dev/sda1 rw
42 41 0:50 / /mnt/priv rw shared:9 - tmpfs tmpfs rw
`
	for _, tc := range []struct {
		path, mp string
		optional []string
	}{
		{"/etc", "/", []string{"shared:1"}},
		{"/sys/fs/cgroup", "/sys/fs/cgroup", []string{"shared:4"}},
		{"/mnt/with space/x", "/mnt/with space", []string{"master:3"}},
		{"/mnt/private", "/", []string{"shared:1"}},
		{"/mnt/priv/x", "/mnt/priv", []string{"shared:9"}},
	} {
		m, err := findMountInfo(strings.NewReader(mountinfo), tc.path)
		if err != nil || m.Mountpoint != tc.mp || !slices.Equal(m.Optional, tc.optional) {
			t.Errorf("findMountInfo(%s) = %+v, %v; want %s %q", tc.path, m, err, tc.mp, tc.optional)
		}
	}
	m, _ := findMountInfo(strings.NewReader(mountinfo), "/sys/fs/cgroup")
	if !slices.Contains(m.SuperOptions, "nsdelegate") {
		t.Errorf("super options %q", m.SuperOptions)
	}
	if _, err := findMountInfo(strings.NewReader(""), "/x"); err == nil {
		t.Errorf("no error without mounts")
	}
}

func TestPassthroughAnnotations(t *testing.T) {
	got := passthroughAnnotations(map[string]string{"a.io/x": "1", "a.io/y/z": "2", "b": "3"}, []string{"a.io/*", "c"})
	if !maps.Equal(got, map[string]string{"a.io/x": "1"}) {
		t.Errorf("passthrough %v", got)
	}
}

func TestUpdateResources(t *testing.T) {
	stubHost(t, hostFacts{cgroup2: true})
	shares, period := uint64(100), uint64(50000)
	orig := &specs.Spec{Linux: &specs.Linux{Resources: &specs.LinuxResources{
		CPU:     &specs.LinuxCPU{Shares: &shares, Period: &period},
		Unified: map[string]string{"a": "1"},
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
	}}}
	n, err := UpdateResources(orig, &runtime.LinuxContainerResources{CpuShares: 300, MemoryLimitInBytes: 1 << 20, Unified: map[string]string{"b": "2"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := n.Linux.Resources
	if *r.CPU.Shares != 300 || *r.CPU.Period != 50000 || *r.Memory.Limit != 1<<20 || !maps.Equal(r.Unified, map[string]string{"a": "1", "b": "2"}) || len(r.Devices) != 1 {
		t.Errorf("updated resources %+v %+v %v", r.CPU, r.Memory, r.Unified)
	}
	if *orig.Linux.Resources.CPU.Shares != 100 || len(orig.Linux.Resources.Unified) != 1 || orig.Linux.Resources.Memory != nil {
		t.Errorf("original spec changed")
	}
	if _, err := UpdateResources(nil, nil, nil); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("nil spec: %v", err)
	}
}
