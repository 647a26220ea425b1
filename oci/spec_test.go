package oci

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/content/local"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/snapshots"
)

func testContext(t *testing.T) context.Context {
	return namespaces.WithNamespace(t.Context(), "testns")
}

// fakeSnapshotter returns the mounts of one snapshot; every other method
// panics (the embedded interface is nil), as none may be called.
type fakeSnapshotter struct {
	snapshots.Snapshotter
	key    string
	mounts []mount.Mount
}

func (f *fakeSnapshotter) Mounts(_ context.Context, key string) ([]mount.Mount, error) {
	if key != f.key {
		return nil, errors.New("no snapshot " + key)
	}
	return f.mounts, nil
}

type fakeClient struct {
	name string
	sn   *fakeSnapshotter
}

func (f *fakeClient) SnapshotService(name string) snapshots.Snapshotter {
	if name != f.name {
		panic("unexpected snapshotter " + name)
	}
	return f.sn
}

// rootfs makes a root filesystem with these /etc/passwd and /etc/group
// ("" for none).
func rootfs(t *testing.T, passwd, group string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"passwd": passwd, "group": group} {
		if data == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, "etc", name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const (
	testPasswd = `root:x:0:0:root:/root:/bin/sh
# a comment

daemon:x:1:1::/:/sbin/nologin
bob:x:1000:1000:Bob:/home/bob:/bin/sh
broken:x:notanumber:0::/:/bin/sh
alice:x:1001:100::/home/alice:/bin/sh
`
	testGroup = `root:x:0:root
wheel:x:10:root,bob
bob:x:1000:bob
users:x:100:
staff:x:2000:alice, bob
audio:x:29:alice
`
)

// bindContainer is a container whose snapshot's mounts are a bind mount
// of dir, as the naive snapshotter's are.
func bindContainer(dir string) (*fakeClient, *containers.Container) {
	sn := &fakeSnapshotter{key: "c1-snap", mounts: []mount.Mount{{Type: "bind", Source: dir, Options: []string{"rbind", "rw"}}}}
	return &fakeClient{name: "naive", sn: sn}, &containers.Container{ID: "c1", Snapshotter: "naive", SnapshotKey: "c1-snap"}
}

// testImage is an image whose config is in a real local content store.
type testImage struct {
	store content.Store
	desc  ocispec.Descriptor
}

func (i *testImage) Config(context.Context) (ocispec.Descriptor, error) { return i.desc, nil }
func (i *testImage) ContentStore() content.Store                        { return i.store }

func newImage(t *testing.T, config ocispec.ImageConfig) *testImage {
	t.Helper()
	store, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}, Config: config})
	if err != nil {
		t.Fatal(err)
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(p), Size: int64(len(p))}
	if err := content.WriteBlob(t.Context(), store, "config", strings.NewReader(string(p)), desc); err != nil {
		t.Fatal(err)
	}
	return &testImage{store: store, desc: desc}
}

func TestDefaultSpec(t *testing.T) {
	if _, err := GenerateSpec(t.Context(), nil, &containers.Container{ID: "x"}); err == nil {
		t.Fatal("spec made without a namespace")
	}
	s, err := GenerateSpec(testContext(t), nil, &containers.Container{ID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != specs.Version || s.Root.Path != "rootfs" || s.Linux.CgroupsPath != "/testns/c1" {
		t.Fatalf("version %q root %q cgroup %q", s.Version, s.Root.Path, s.Linux.CgroupsPath)
	}
	var nss []specs.LinuxNamespaceType
	for _, n := range s.Linux.Namespaces {
		nss = append(nss, n.Type)
	}
	if want := []specs.LinuxNamespaceType{"pid", "ipc", "uts", "mount", "network"}; !slices.Equal(nss, want) {
		t.Errorf("namespaces %v, want %v", nss, want)
	}
	var dests []string
	for _, m := range s.Mounts {
		dests = append(dests, m.Destination)
	}
	if want := []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/run"}; !slices.Equal(dests, want) {
		t.Errorf("mounts %v, want %v", dests, want)
	}
	p := s.Process
	if p.Cwd != "/" || !p.NoNewPrivileges || p.User.UID != 0 || p.Terminal || len(p.Env) != 0 {
		t.Errorf("process %+v", p)
	}
	if len(p.Capabilities.Bounding) != 14 || !slices.Contains(p.Capabilities.Effective, "CAP_NET_BIND_SERVICE") || slices.Contains(p.Capabilities.Bounding, "CAP_SYS_ADMIN") {
		t.Errorf("capabilities %v", p.Capabilities.Bounding)
	}
	if len(p.Rlimits) != 1 || p.Rlimits[0] != (specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}) {
		t.Errorf("rlimits %+v", p.Rlimits)
	}
	if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
		t.Errorf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	if d := s.Linux.Resources.Devices; len(d) != 1 || d[0].Allow || d[0].Access != "rwm" {
		t.Errorf("device rules %+v", d)
	}
	// Each spec is its own: changing one leaves the next alone.
	s.Mounts[0].Options[0] = "changed"
	s.Linux.MaskedPaths[0] = "changed"
	s2, _ := GenerateSpec(testContext(t), nil, &containers.Container{ID: "c2"})
	if s2.Mounts[0].Options[0] == "changed" || s2.Linux.MaskedPaths[0] == "changed" {
		t.Error("specs share their slices")
	}
}

func TestMergeEnv(t *testing.T) {
	for _, tc := range []struct {
		env, over, want []string
	}{
		{nil, []string{"A=1"}, []string{"A=1"}},
		{[]string{"A=1", "B=2"}, []string{"B=3", "C=4"}, []string{"A=1", "B=3", "C=4"}},
		{[]string{"A=1", "B=2", "C=3"}, []string{"B"}, []string{"A=1", "C=3"}},
		{[]string{"A=1"}, []string{"Z"}, []string{"A=1"}},
		{[]string{"A=1"}, []string{"A", "A=2"}, []string{"A=2"}},
		{[]string{"A=1"}, []string{"A="}, []string{"A="}},
		{[]string{"A=1", "A=2"}, nil, []string{"A=2"}},
		{[]string{"A=x=y"}, []string{"A=b=c"}, []string{"A=b=c"}},
	} {
		env := slices.Clone(tc.env)
		if got := MergeEnv(env, tc.over); !slices.Equal(got, tc.want) {
			t.Errorf("MergeEnv(%q, %q) = %q, want %q", tc.env, tc.over, got, tc.want)
		}
		if !slices.Equal(env, tc.env) {
			t.Errorf("MergeEnv changed its input %q to %q", tc.env, env)
		}
	}
}

func TestImageConfig(t *testing.T) {
	ctx := testContext(t)
	client, c := bindContainer(rootfs(t, testPasswd, testGroup))
	img := newImage(t, ocispec.ImageConfig{
		Env:        []string{"PATH=/image/bin", "FOO=image", "BAR=image"},
		Entrypoint: []string{"/entry", "-x"},
		Cmd:        []string{"cmd1", "cmd2"},
		WorkingDir: "/work",
	})

	s, err := GenerateSpec(ctx, client, c, WithEnv([]string{"FOO=user", "NEW=user"}), WithImageConfig(img), WithEnv([]string{"BAR"}))
	if err != nil {
		t.Fatal(err)
	}
	// The image's env over the defaults, the user's (set before) over the
	// image's, and BAR unset after.
	if want := []string{"PATH=/image/bin", "FOO=user", "NEW=user"}; !slices.Equal(s.Process.Env, want) {
		t.Errorf("env %q, want %q", s.Process.Env, want)
	}
	if want := []string{"/entry", "-x", "cmd1", "cmd2"}; !slices.Equal(s.Process.Args, want) {
		t.Errorf("args %q, want %q", s.Process.Args, want)
	}
	if s.Process.Cwd != "/work" {
		t.Errorf("cwd %q", s.Process.Cwd)
	}
	// No user in the image: root, with the groups /etc/group lists root
	// in besides its own.
	if u := s.Process.User; u.UID != 0 || u.GID != 0 || !slices.Equal(u.AdditionalGids, []uint32{0, 10}) {
		t.Errorf("user %+v", u)
	}

	// Given args replace the image's command; its entrypoint stays.
	s, err = GenerateSpec(ctx, client, c, WithImageConfigArgs(img, []string{"mine"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/entry", "-x", "mine"}; !slices.Equal(s.Process.Args, want) {
		t.Errorf("args %q, want %q", s.Process.Args, want)
	}
	// A later WithProcessArgs replaces them all.
	s, _ = GenerateSpec(ctx, client, c, WithImageConfig(img), WithProcessArgs("/bin/true"))
	if !slices.Equal(s.Process.Args, []string{"/bin/true"}) {
		t.Errorf("args %q", s.Process.Args)
	}

	// An image with no PATH and no working dir gets the defaults.
	bare := newImage(t, ocispec.ImageConfig{Env: []string{"FOO=1"}, Cmd: []string{"sh"}})
	s, err = GenerateSpec(ctx, client, c, WithImageConfig(bare))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{DefaultPathEnv, "FOO=1"}; !slices.Equal(s.Process.Env, want) {
		t.Errorf("env %q, want %q", s.Process.Env, want)
	}
	if s.Process.Cwd != "/" || !slices.Equal(s.Process.Args, []string{"sh"}) {
		t.Errorf("cwd %q args %q", s.Process.Cwd, s.Process.Args)
	}
}

func TestImageConfigUser(t *testing.T) {
	ctx := testContext(t)
	client, c := bindContainer(rootfs(t, testPasswd, testGroup))
	for _, tc := range []struct {
		user     string
		uid, gid uint32
		gids     []uint32
		err      error
		names    string // what the error must name
	}{
		{user: "bob", uid: 1000, gid: 1000, gids: []uint32{1000, 10, 2000}},
		{user: "alice", uid: 1001, gid: 100, gids: []uint32{100, 2000, 29}},
		{user: "1000", uid: 1000, gid: 1000, gids: []uint32{1000, 10, 2000}},
		// The primary group is among the supplementary ones already.
		{user: "bob:staff", uid: 1000, gid: 2000, gids: []uint32{10, 2000}},
		{user: "1001:audio", uid: 1001, gid: 29, gids: []uint32{2000, 29}},
		{user: "1000:3000", uid: 1000, gid: 3000, gids: []uint32{3000, 10, 2000}},
		// A uid not in /etc/passwd is fine: group 0, no supplementary
		// groups but its own.
		{user: "4242", uid: 4242, gid: 0, gids: []uint32{0}},
		{user: "nobody2", err: ErrNoUsersFound, names: "nobody2"},
		{user: "bob:nogroup", err: ErrNoGroupsFound, names: "nogroup"},
		// An entry with a malformed uid is no user, not root.
		{user: "broken", err: ErrNoUsersFound, names: "broken"},
	} {
		img := newImage(t, ocispec.ImageConfig{User: tc.user, Cmd: []string{"id"}})
		s, err := GenerateSpec(ctx, client, c, WithImageConfig(img))
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("user %q: error %v, want %v", tc.user, err, tc.err)
			} else if !strings.Contains(err.Error(), tc.names) {
				t.Errorf("user %q: error %q does not name it", tc.user, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("user %q: %v", tc.user, err)
			continue
		}
		if u := s.Process.User; u.UID != tc.uid || u.GID != tc.gid || !slices.Equal(u.AdditionalGids, tc.gids) {
			t.Errorf("user %q: got %d:%d %v, want %d:%d %v", tc.user, u.UID, u.GID, u.AdditionalGids, tc.uid, tc.gid, tc.gids)
		}
	}
}

func TestWithUser(t *testing.T) {
	ctx := testContext(t)
	dir := rootfs(t, testPasswd, testGroup)
	client, c := bindContainer(dir)
	// WithUser replaces the supplementary groups of an earlier user.
	s, err := GenerateSpec(ctx, client, c, WithUser("bob"), WithAdditionalGIDs("bob"), WithUser("daemon"))
	if err != nil {
		t.Fatal(err)
	}
	if u := s.Process.User; u.UID != 1 || u.GID != 1 || !slices.Equal(u.AdditionalGids, []uint32{1}) {
		t.Errorf("user %+v", u)
	}

	for _, bad := range []string{"", ":", "bob:", ":staff", "a:b:c", "-1", "2147483648", "bob:99999999999"} {
		if _, err := GenerateSpec(ctx, client, c, WithUser(bad)); err == nil || !strings.Contains(err.Error(), "invalid user") {
			t.Errorf("WithUser(%q): %v", bad, err)
		}
	}

	// With no snapshot, the users are read from an absolute root path.
	noSnap := &containers.Container{ID: "c"}
	s, err = GenerateSpec(ctx, nil, noSnap, WithRootFSPath(dir), WithUser("alice"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Process.User.UID != 1001 {
		t.Errorf("user %+v", s.Process.User)
	}
	if _, err := GenerateSpec(ctx, nil, noSnap, WithUser("alice")); err == nil {
		t.Error("looked up a user in a relative root path")
	}
	// Both ids given: nothing to look up, so no root filesystem needed.
	s, err = GenerateSpec(ctx, nil, noSnap, WithUser("5:6"))
	if err != nil || s.Process.User.UID != 5 || s.Process.User.GID != 6 {
		t.Errorf("5:6: %+v %v", s.Process.User, err)
	}

	// Supplementary groups added by id and by name.
	s, err = GenerateSpec(ctx, client, c, WithUser("bob"), WithAppendAdditionalGroups("29", "users"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint32{1000, 29, 100}; !slices.Equal(s.Process.User.AdditionalGids, want) {
		t.Errorf("gids %v, want %v", s.Process.User.AdditionalGids, want)
	}
	if _, err := GenerateSpec(ctx, client, c, WithAppendAdditionalGroups("nogroup")); !errors.Is(err, ErrNoGroupsFound) {
		t.Errorf("unknown group: %v", err)
	}
}

func TestUserFiles(t *testing.T) {
	ctx := testContext(t)

	// No /etc/passwd: a uid is fine, a name is not, and the error says
	// which user and why.
	client, c := bindContainer(rootfs(t, "", ""))
	s, err := GenerateSpec(ctx, client, c, WithUser("123"), WithAdditionalGIDs("123"))
	if err != nil || s.Process.User.UID != 123 || !slices.Equal(s.Process.User.AdditionalGids, []uint32{0}) {
		t.Errorf("uid without passwd: %+v %v", s.Process.User, err)
	}
	_, err = GenerateSpec(ctx, client, c, WithUser("bob"))
	if !errors.Is(err, ErrNoUsersFound) || !strings.Contains(err.Error(), "bob") || !strings.Contains(err.Error(), "/etc/passwd") {
		t.Errorf("name without passwd: %v", err)
	}

	// /etc/passwd an absolute link, resolved inside the root filesystem
	// (as the container sees it), not on the host.
	dir := rootfs(t, "", testGroup)
	os.MkdirAll(filepath.Join(dir, "store"), 0o755)
	os.WriteFile(filepath.Join(dir, "store", "passwd"), []byte("linked:x:77:77::/:/bin/sh\n"), 0o644)
	if err := os.Symlink("/../store/passwd", filepath.Join(dir, "etc", "passwd")); err != nil {
		t.Fatal(err)
	}
	client, c = bindContainer(dir)
	s, err = GenerateSpec(ctx, client, c, WithUser("linked"))
	if err != nil || s.Process.User.UID != 77 {
		t.Errorf("linked passwd: %+v %v", s.Process.User, err)
	}

	// A link to a host file outside stays inside.
	dir = rootfs(t, "", "")
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "etc", "passwd")); err != nil {
		t.Fatal(err)
	}
	client, c = bindContainer(dir)
	if _, err := GenerateSpec(ctx, client, c, WithUser("root")); err == nil {
		t.Error("read the host's /etc/passwd through a link")
	}

	// /etc/passwd a directory: an error, not a hang or a panic.
	dir = rootfs(t, "", "")
	os.Mkdir(filepath.Join(dir, "etc", "passwd"), 0o755)
	client, c = bindContainer(dir)
	if _, err := GenerateSpec(ctx, client, c, WithUser("root")); err == nil || !strings.Contains(err.Error(), "regular file") {
		t.Errorf("passwd a directory: %v", err)
	}
}

// The snapshot's mounts are really mounted, read-only, when they are not
// a plain bind mount.
func TestUserFromOverlaySnapshot(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to mount")
	}
	ctx := testContext(t)
	lower := rootfs(t, testPasswd, testGroup)
	upper := rootfs(t, "bob:x:1500:1500::/:/bin/sh\n", "")
	work := t.TempDir()
	sn := &fakeSnapshotter{key: "k", mounts: []mount.Mount{{
		Type:    "overlay",
		Source:  "overlay",
		Options: []string{"workdir=" + work, "upperdir=" + upper, "lowerdir=" + lower},
	}}}
	client := &fakeClient{name: "overlayfs", sn: sn}
	c := &containers.Container{ID: "c", Snapshotter: "overlayfs", SnapshotKey: "k"}
	s, err := GenerateSpec(ctx, client, c, WithUser("bob:staff"))
	if err != nil {
		t.Fatal(err)
	}
	// passwd from the upper layer, group from the lower one.
	if u := s.Process.User; u.UID != 1500 || u.GID != 2000 {
		t.Errorf("user %+v", u)
	}
	mps, err := mount.PointsUnder(os.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, mp := range mps {
		if strings.Contains(mp, "containerd-mount") {
			t.Errorf("temporary mount %s left", mp)
		}
	}
}

func TestReadonlyMounts(t *testing.T) {
	in := []mount.Mount{
		{Type: "overlay", Options: []string{"index=off", "workdir=/w", "upperdir=/u", "lowerdir=/l1:/l2", "volatile"}},
		{Type: "bind", Source: "/s", Options: []string{"rbind", "rw"}},
	}
	out := readonlyMounts(in)
	if want := []string{"index=off", "lowerdir=/u:/l1:/l2", "ro"}; !slices.Equal(out[0].Options, want) {
		t.Errorf("overlay %q, want %q", out[0].Options, want)
	}
	if want := []string{"rbind", "ro"}; !slices.Equal(out[1].Options, want) {
		t.Errorf("bind %q, want %q", out[1].Options, want)
	}
	if in[1].Options[1] != "rw" {
		t.Error("readonlyMounts changed its input")
	}
}

func TestOptions(t *testing.T) {
	ctx := testContext(t)
	c := &containers.Container{ID: "c"}
	s, err := GenerateSpec(ctx, nil, c,
		WithHostNamespace(specs.NetworkNamespace),
		WithLinuxNamespace(specs.LinuxNamespace{Type: specs.PIDNamespace, Path: "/proc/1/ns/pid"}),
		WithMounts([]specs.Mount{{Destination: "/dev/shm/", Type: "bind", Source: "/dev/shm"}, {Destination: "/data", Type: "bind", Source: "/srv"}}),
		WithHostHostsFile, WithHostResolvconf,
		WithTTY, WithProcessCwd("/tmp"), WithHostname("box"),
		WithAnnotations(map[string]string{"a": "1"}), WithAnnotations(map[string]string{"b": "2"}),
		WithRootFSReadonly(), WithRootFSPath("/abs/rootfs"), WithCgroup("/my/cg"),
		WithMemoryLimit(1<<20), WithCPUShares(512), WithCPUCFS(50000, 100000),
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range s.Linux.Namespaces {
		if n.Type == specs.NetworkNamespace {
			t.Error("network namespace kept")
		}
		if n.Type == specs.PIDNamespace && n.Path != "/proc/1/ns/pid" {
			t.Errorf("pid namespace %+v", n)
		}
	}
	if len(s.Linux.Namespaces) != 4 {
		t.Errorf("namespaces %+v", s.Linux.Namespaces)
	}
	var shm []specs.Mount
	dests := map[string]bool{}
	for _, m := range s.Mounts {
		dests[m.Destination] = true
		if filepath.Clean(m.Destination) == "/dev/shm" {
			shm = append(shm, m)
		}
	}
	if len(shm) != 1 || shm[0].Type != "bind" {
		t.Errorf("/dev/shm mounts %+v", shm)
	}
	for _, d := range []string{"/data", "/etc/hosts", "/etc/resolv.conf", "/proc"} {
		if !dests[d] {
			t.Errorf("no mount at %s", d)
		}
	}
	p := s.Process
	if !p.Terminal || !slices.Contains(p.Env, "TERM=xterm") || p.Cwd != "/tmp" || s.Hostname != "box" {
		t.Errorf("process %+v hostname %q", p, s.Hostname)
	}
	if len(s.Annotations) != 2 || !s.Root.Readonly || s.Root.Path != "/abs/rootfs" || s.Linux.CgroupsPath != "/my/cg" {
		t.Errorf("annotations %v root %+v cgroup %q", s.Annotations, s.Root, s.Linux.CgroupsPath)
	}
	r := s.Linux.Resources
	if *r.Memory.Limit != 1<<20 || *r.CPU.Shares != 512 || *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 {
		t.Errorf("resources %+v %+v", r.Memory, r.CPU)
	}
}

func TestPrivileged(t *testing.T) {
	s, err := GenerateSpec(testContext(t), nil, &containers.Container{ID: "c"},
		WithMounts([]specs.Mount{{Type: "cgroup", Destination: "/sys/fs/cgroup", Options: []string{"ro"}}}),
		WithPrivileged, WithHostDevices)
	if err != nil {
		t.Fatal(err)
	}
	if s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil {
		t.Errorf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	for _, m := range s.Mounts {
		if (m.Type == "sysfs" || m.Type == "cgroup") && slices.Contains(m.Options, "ro") {
			t.Errorf("%s mount still read-only: %v", m.Type, m.Options)
		}
	}
	if d := s.Linux.Resources.Devices; len(d) != 1 || !d[0].Allow || d[0].Access != "rwm" {
		t.Errorf("device rules %+v", d)
	}
	seen := map[string]bool{}
	hasNull := false
	for _, d := range s.Linux.Devices {
		if seen[d.Path] {
			t.Errorf("device %s listed twice", d.Path)
		}
		seen[d.Path] = true
		hasNull = hasNull || (d.Path == "/dev/null" && d.Type == "c" && d.Major == 1 && d.Minor == 3)
	}
	if !hasNull {
		t.Error("host's /dev/null not among the devices")
	}
	if os.Getuid() == 0 && !slices.Contains(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN") {
		t.Errorf("capabilities %v", s.Process.Capabilities.Bounding)
	}
}

func TestCapabilities(t *testing.T) {
	caps, err := capsFromStatus("Name:\tx\nCapEff:\t0000000000200001\n")
	if err != nil || !slices.Equal(caps, []string{"CAP_CHOWN", "CAP_SYS_ADMIN"}) {
		t.Fatalf("caps %v %v", caps, err)
	}
	if _, err := capsFromStatus("CapEff:\tzz\n"); err == nil {
		t.Fatal("parsed a bad CapEff")
	}
	s, _ := GenerateSpec(testContext(t), nil, &containers.Container{ID: "c"},
		WithAddedCapabilities([]string{"CAP_SYS_ADMIN", "CAP_CHOWN"}), WithDroppedCapabilities([]string{"CAP_NET_RAW"}))
	c := s.Process.Capabilities
	for _, set := range [][]string{c.Bounding, c.Effective, c.Permitted} {
		if !slices.Contains(set, "CAP_SYS_ADMIN") || slices.Contains(set, "CAP_NET_RAW") || len(set) != 14 {
			t.Errorf("caps %v", set)
		}
	}
}

func TestSpecFromFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(p, []byte(`{"ociVersion":"1.0.2","process":{"args":["x"]},"hostname":"f"}`), 0o644)
	s, err := GenerateSpec(testContext(t), nil, &containers.Container{ID: "c"}, WithSpecFromFile(p))
	if err != nil {
		t.Fatal(err)
	}
	if s.Hostname != "f" || s.Linux != nil || !slices.Equal(s.Process.Args, []string{"x"}) {
		t.Errorf("spec %+v", s)
	}
	os.WriteFile(p, []byte(`{"process":`), 0o644)
	if _, err := GenerateSpec(testContext(t), nil, &containers.Container{ID: "c"}, WithSpecFromFile(p)); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("bad spec file: %v", err)
	}
}

func TestParseCPUList(t *testing.T) {
	got, ok := parseCPUList("0-2,5")
	if !ok || !slices.Equal(got, []int{0, 1, 2, 5}) {
		t.Errorf("got %v %v", got, ok)
	}
	for _, bad := range []string{"", "3-1", "x", "0-99999999"} {
		if _, ok := parseCPUList(bad); ok {
			t.Errorf("parsed %q", bad)
		}
	}
}

// The options in the order ctr run gives them, applied to an empty spec
// as the client's WithSpec does.
func TestCtrRunOrder(t *testing.T) {
	ctx := testContext(t)
	client, c := bindContainer(rootfs(t, testPasswd, testGroup))
	img := newImage(t, ocispec.ImageConfig{Env: []string{"PATH=/bin", "A=image"}, Cmd: []string{"sh"}, User: "alice"})
	var s Spec
	err := ApplyOpts(ctx, client, c, &s,
		WithDefaultSpecForPlatform(""), WithDefaultUnixDevices,
		WithEnv([]string{"A=user"}),
		WithImageConfig(img),
		WithProcessArgs("id"),
		WithUser("bob:staff"), WithAdditionalGIDs("bob:staff"),
		WithTTY,
		WithPrivilegedWithoutHostDevices,
	)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"PATH=/bin", "A=user", "TERM=xterm"}; !slices.Equal(s.Process.Env, want) {
		t.Errorf("env %q, want %q", s.Process.Env, want)
	}
	if u := s.Process.User; u.UID != 1000 || u.GID != 2000 || !slices.Equal(u.AdditionalGids, []uint32{10, 2000}) {
		t.Errorf("user %+v", u)
	}
	if s.Linux.CgroupsPath != "/testns/c1" || len(s.Linux.Devices) != 0 {
		t.Errorf("cgroup %q devices %d", s.Linux.CgroupsPath, len(s.Linux.Devices))
	}
	// Default rules: deny all, then allow the usual devices.
	if d := s.Linux.Resources.Devices; len(d) != 10 || d[0].Allow || !d[1].Allow || *d[1].Major != 1 || *d[1].Minor != 3 {
		t.Errorf("device rules %+v", d)
	}

	if err := WithDefaultSpecForPlatform("linux/arm64")(ctx, nil, c, &s); err != nil {
		t.Error(err)
	}
	if err := WithDefaultSpecForPlatform("windows/amd64")(ctx, nil, c, &s); err == nil || !strings.Contains(err.Error(), "windows") {
		t.Errorf("windows spec: %v", err)
	}
}
