package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/images"
	"github.com/llitfkitfk/containerd/cri/spec"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/snapshots"
)

func TestValidateImageMounts(t *testing.T) {
	img := &runtime.ImageSpec{Image: "vol"}
	for _, tc := range []struct {
		name string
		m    *runtime.Mount
		want string // "" valid
	}{
		{"plain", &runtime.Mount{ContainerPath: "/v", Image: img, Readonly: true}, ""},
		{"sub-path", &runtime.Mount{ContainerPath: "/v", Image: img, Readonly: true, ImageSubPath: "etc/ssl"}, ""},
		{"host mount untouched", &runtime.Mount{ContainerPath: "/h", HostPath: "/tmp"}, ""},
		{"writable", &runtime.Mount{ContainerPath: "/v", Image: img}, "readonly must be true"},
		{"host path", &runtime.Mount{ContainerPath: "/v", Image: img, Readonly: true, HostPath: "/etc"}, "host_path must be empty"},
		{"no image", &runtime.Mount{ContainerPath: "/v", Image: &runtime.ImageSpec{}, Readonly: true}, "names no image"},
		{"relative destination", &runtime.Mount{ContainerPath: "v", Image: img, Readonly: true}, "must be absolute"},
		{"absolute sub-path", &runtime.Mount{ContainerPath: "/v", Image: img, Readonly: true, ImageSubPath: "/etc"}, "image_sub_path"},
		{"escaping sub-path", &runtime.Mount{ContainerPath: "/v", Image: img, Readonly: true, ImageSubPath: "etc/../../x"}, "image_sub_path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validateImageMounts([]*runtime.Mount{tc.m})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errdefs.IsInvalidArgument(err) {
				t.Fatalf("err %v, want invalid argument with %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "ImageVolumeMountFailed: ") {
				t.Errorf("%q does not start with the kubelet's ImageVolumeMountFailed", err)
			}
		})
	}
}

func TestImageSubPath(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	for _, d := range []string{"etc/ssl", "usr/lib"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc/passwd"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"lib": "usr/lib", "abs": "/", "up": "../..", "out": outside} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	realRoot, _ := filepath.EvalSymlinks(root)
	for _, tc := range []struct {
		sub, want string // want "": an error
	}{
		{"", root},
		{"etc", filepath.Join(realRoot, "etc")},
		{"etc/ssl/", filepath.Join(realRoot, "etc/ssl")},
		{"lib", filepath.Join(realRoot, "usr/lib")}, // resolved inside the image
		{"etc/passwd", ""},                          // not a directory
		{"missing", ""},
		{"up", ""},
		{"out", ""},
		{"abs", ""},
	} {
		got, err := imageSubPath(root, tc.sub)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%q: resolved to %s, want an error", tc.sub, got)
			} else if !errdefs.IsInvalidArgument(err) {
				t.Errorf("%q: %v, want invalid argument", tc.sub, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.sub, got, err, tc.want)
		}
	}
}

// View makes a read-only snapshot; the fake keeps it as an active one.
func (f *fakeSnapshotter) View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.parents[key]; ok {
		return nil, errdefs.ErrAlreadyExists
	}
	f.parents[key] = parent
	return []mount.Mount{{Type: "bind", Source: "/layers/" + parent, Options: []string{"ro", "rbind"}}}, nil
}

// fakeMounts stands for the kernel's mounts: mounting an image fills the
// directory with a tiny root filesystem, unmounting empties it.
type fakeMounts struct {
	mu          sync.Mutex
	mounted     map[string]string // dir: source
	failMount   bool
	failUnmount bool
}

func stubImageVolumeMounts(t *testing.T) *fakeMounts {
	f := &fakeMounts{mounted: map[string]string{}}
	m, u, is := mountImageVolume, unmountImageVolume, imageVolumeMounted
	t.Cleanup(func() { mountImageVolume, unmountImageVolume, imageVolumeMounted = m, u, is })
	mountImageVolume = func(ms []mount.Mount, dir string) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.failMount {
			return errors.New("mount refused")
		}
		if len(ms) != 1 {
			return fmt.Errorf("%d mounts", len(ms))
		}
		if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "etc/passwd"), nil, 0o644); err != nil {
			return err
		}
		f.mounted[dir] = ms[0].Source
		return nil
	}
	unmountImageVolume = func(dir string) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.failUnmount {
			return errors.New("device busy")
		}
		if _, ok := f.mounted[dir]; ok {
			delete(f.mounted, dir)
			return os.RemoveAll(filepath.Join(dir, "etc"))
		}
		return nil
	}
	imageVolumeMounted = func(dir string) (bool, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		_, ok := f.mounted[dir]
		return ok, nil
	}
	return f
}

func (f *fakeMounts) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.mounted)
}

// volImages has busybox and the image "vol".
type volImages struct{ ctrImages }

func (volImages) LocalResolve(ctx context.Context, ref string) (images.Image, error) {
	if ref == "vol" {
		return images.Image{ID: "sha256:volid", References: []string{"docker.io/library/vol:latest"}, ChainID: "sha256:volchain"}, nil
	}
	return ctrImages{}.LocalResolve(ctx, ref)
}

// createWithVolumes creates a container with the given mounts; the spec
// input's config is kept in *seen.
func (e *ctrEnv) createWithVolumes(name string, mounts []*runtime.Mount, seen **runtime.ContainerConfig) (string, error) {
	resp, err := e.s.createContainer(e.ctx, &runtime.CreateContainerRequest{
		PodSandboxId: e.sandbox,
		Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: name},
			Image:    &runtime.ImageSpec{Image: "busybox"},
			Mounts:   mounts,
		},
	}, volImages{}, func(ctx context.Context, in spec.ContainerInput) (*specs.Spec, error) {
		if seen != nil {
			*seen = in.Config
		}
		return e.spec(ctx, in)
	})
	return resp.GetContainerId(), err
}

func TestImageVolumeLifecycle(t *testing.T) {
	e := newCtrEnv(t)
	fm := stubImageVolumeMounts(t)
	mounts := []*runtime.Mount{
		{ContainerPath: "/host", HostPath: t.TempDir()},
		{ContainerPath: "/whole", Image: &runtime.ImageSpec{Image: "vol"}, Readonly: true},
		{ContainerPath: "/etc-only", Image: &runtime.ImageSpec{Image: "vol", UserSpecifiedImage: "vol:1"}, Readonly: true, ImageSubPath: "etc"},
	}
	var seen *runtime.ContainerConfig
	id, err := e.createWithVolumes("app", mounts, &seen)
	if err != nil {
		t.Fatal(err)
	}
	if mounts[1].HostPath != "" || mounts[1].Image.ImageRef != "" {
		t.Error("the request's mounts were changed")
	}
	dir1, dir2 := e.s.imageVolumeDir(id, 1), e.s.imageVolumeDir(id, 2)
	realDir2, _ := filepath.EvalSymlinks(dir2)
	if got := seen.GetMounts()[1].GetHostPath(); got != dir1 {
		t.Errorf("spec's whole-image host path %q, want %q", got, dir1)
	}
	if got := seen.GetMounts()[2].GetHostPath(); got != filepath.Join(realDir2, "etc") {
		t.Errorf("spec's sub-path host path %q, want %q", got, filepath.Join(realDir2, "etc"))
	}
	for i := 1; i <= 2; i++ {
		key := imageVolumeKey(id, i)
		if p := e.sn.parents[key]; p != "sha256:volchain" {
			t.Errorf("view %s parent %q", key, p)
		}
		if src := fm.mounted[e.s.imageVolumeDir(id, i)]; src != "/layers/sha256:volchain" {
			t.Errorf("volume %d mounted from %q", i, src)
		}
	}
	rec, err := e.cs.Get(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		if v := rec.Labels[imageVolumeGCLabel("overlayfs", i)]; v != imageVolumeKey(id, i) {
			t.Errorf("record's gc label for volume %d: %q (labels %v)", i, v, rec.Labels)
		}
	}

	st, err := e.s.ContainerStatus(e.ctx, &runtime.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatal(err)
	}
	var found int
	for _, m := range st.GetStatus().GetMounts() {
		if m.GetImage() != nil {
			found++
			if m.GetImage().GetImage() != "vol" || m.GetImage().GetImageRef() != "sha256:volid" || !m.GetReadonly() {
				t.Errorf("status mount %+v", m)
			}
		}
	}
	if found != 2 {
		t.Errorf("%d image mounts in the status", found)
	}

	if _, err := e.s.RemoveContainer(e.ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if n := fm.count(); n != 0 {
		t.Errorf("%d volumes mounted after remove", n)
	}
	for i := 1; i <= 2; i++ {
		if _, ok := e.sn.parents[imageVolumeKey(id, i)]; ok {
			t.Errorf("view %d left", i)
		}
	}
	if _, err := os.Stat(e.s.imageVolumesBase(id)); !os.IsNotExist(err) {
		t.Errorf("volume dir after remove: %v", err)
	}
}

// A create that fails at or after an image volume undoes every one made:
// mounts, views and directories; and nothing is made for a bad request.
func TestImageVolumeCreateFailureCleansUp(t *testing.T) {
	e := newCtrEnv(t)
	fm := stubImageVolumeMounts(t)
	before := e.sn.count()
	good := &runtime.Mount{ContainerPath: "/a", Image: &runtime.ImageSpec{Image: "vol"}, Readonly: true}
	check := func(what string) {
		t.Helper()
		if n := fm.count(); n != 0 {
			t.Errorf("%s: %d volumes left mounted", what, n)
		}
		if n := e.sn.count(); n != before {
			t.Errorf("%s: %d snapshots left", what, n-before)
		}
		if entries, _ := os.ReadDir(filepath.Join(e.s.config.StateDir, imageVolumesDir)); len(entries) != 0 {
			t.Errorf("%s: volume dirs left: %v", what, entries)
		}
		if n := len(e.s.containers.List()); n != 0 {
			t.Errorf("%s: %d containers", what, n)
		}
		if e.leases.live != 0 {
			t.Errorf("%s: %d leases left", what, e.leases.live)
		}
	}
	for _, tc := range []struct {
		name   string
		mounts []*runtime.Mount
		code   codes.Code
	}{
		{"writable", []*runtime.Mount{{ContainerPath: "/a", Image: &runtime.ImageSpec{Image: "vol"}}}, codes.InvalidArgument},
		{"missing image", []*runtime.Mount{good, {ContainerPath: "/b", Image: &runtime.ImageSpec{Image: "nothere"}, Readonly: true}}, codes.NotFound},
		{"missing sub-path", []*runtime.Mount{good, {ContainerPath: "/b", Image: &runtime.ImageSpec{Image: "vol"}, Readonly: true, ImageSubPath: "not-existing"}}, codes.InvalidArgument},
		{"file sub-path", []*runtime.Mount{good, {ContainerPath: "/b", Image: &runtime.ImageSpec{Image: "vol"}, Readonly: true, ImageSubPath: "etc/passwd"}}, codes.InvalidArgument},
	} {
		_, err := e.createWithVolumes("x", tc.mounts, nil)
		if grpcCode(err) != tc.code || !strings.Contains(err.Error(), "ImageVolumeMountFailed") {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
		}
		check(tc.name)
	}

	fm.failMount = true
	if _, err := e.createWithVolumes("x", []*runtime.Mount{good}, nil); err == nil {
		t.Error("create with a failing mount succeeded")
	}
	check("failing mount")
	fm.failMount = false

	// A later step failing undoes the volumes too.
	e.spec = func(context.Context, spec.ContainerInput) (*specs.Spec, error) {
		return nil, fmt.Errorf("bad spec: %w", errdefs.ErrInvalidArgument)
	}
	if _, err := e.createWithVolumes("x", []*runtime.Mount{good}, nil); grpcCode(err) != codes.InvalidArgument {
		t.Errorf("spec failure: %v", err)
	}
	check("spec failure")
}

// An unmount that fails fails RemoveContainer and keeps the container, to
// be removed again.
func TestImageVolumeRemoveRetries(t *testing.T) {
	e := newCtrEnv(t)
	fm := stubImageVolumeMounts(t)
	id, err := e.createWithVolumes("app", []*runtime.Mount{{ContainerPath: "/a", Image: &runtime.ImageSpec{Image: "vol"}, Readonly: true}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	fm.failUnmount = true
	if _, err := e.s.RemoveContainer(e.ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err == nil {
		t.Fatal("remove succeeded with the volume still mounted")
	}
	if _, err := e.cs.Get(e.ctx, id); err != nil {
		t.Errorf("record gone after a failed remove: %v", err)
	}
	if _, ok := e.sn.parents[imageVolumeKey(id, 0)]; !ok {
		t.Error("view removed while still mounted")
	}
	c, err := e.s.containers.Get(id)
	if err != nil || c.Status().Removing {
		t.Fatalf("container after a failed remove: %v", err)
	}
	fm.failUnmount = false
	if _, err := e.s.RemoveContainer(e.ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if fm.count() != 0 || e.sn.parents[imageVolumeKey(id, 0)] != "" {
		t.Error("volume left after the second remove")
	}
}

// After a restart: a created container's volumes that are no longer
// mounted (a reboot) are mounted again from their views; one still
// mounted is left alone; what a create cut short left is removed.
func TestRecoverImageVolumes(t *testing.T) {
	e := newCtrEnv(t)
	fm := stubImageVolumeMounts(t)
	vol := []*runtime.Mount{{ContainerPath: "/a", Image: &runtime.ImageSpec{Image: "vol"}, Readonly: true, ImageSubPath: "etc"}}
	created, err := e.createWithVolumes("created", vol, nil)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := e.createWithVolumes("kept", vol, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A create cut short: its view and mounted directory, no record.
	orphan := "0123456789abcdef"
	ms, err := e.sn.View(e.ctx, imageVolumeKey(orphan, 3), "sha256:volchain")
	if err != nil {
		t.Fatal(err)
	}
	odir := e.s.imageVolumeDir(orphan, 3)
	if err := os.MkdirAll(odir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := mountImageVolume(ms, odir); err != nil {
		t.Fatal(err)
	}
	// The reboot took the created container's mount.
	cdir := e.s.imageVolumeDir(created, 0)
	if err := unmountImageVolume(cdir); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(e.s.imageVolumesBase(created)); err != nil {
		t.Fatal(err)
	}

	s2 := e.service(e.s.config)
	s2.deps.Leases = e.leases
	if err := s2.recoverSandboxes(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := s2.recoverContainers(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := fm.mounted[cdir]; !ok {
		t.Error("the created container's volume was not mounted again")
	}
	if _, err := os.Stat(filepath.Join(cdir, "etc")); err != nil {
		t.Errorf("its sub-path: %v", err)
	}
	if _, ok := fm.mounted[s2.imageVolumeDir(kept, 0)]; !ok {
		t.Error("a mounted volume was unmounted")
	}
	if _, ok := fm.mounted[odir]; ok {
		t.Error("the orphan volume is still mounted")
	}
	if _, err := os.Stat(s2.imageVolumesBase(orphan)); !os.IsNotExist(err) {
		t.Errorf("orphan dir: %v", err)
	}
	if _, ok := e.sn.parents[imageVolumeKey(orphan, 3)]; ok {
		t.Error("orphan view left")
	}
	for _, id := range []string{created, kept} {
		c, err := s2.containers.Get(id)
		if err != nil || c.Status().State() != runtime.ContainerState_CONTAINER_CREATED {
			t.Fatalf("%s: %v", id, err)
		}
		if err := s2.removeContainer(e.ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if n := fm.count(); n != 0 {
		t.Errorf("%d volumes mounted after removing everything", n)
	}
}

// The real mount check: a mount point by its path or through a symbolic
// link (mountinfo has resolved paths); a plain or missing directory is
// not one.
func TestImageVolumeMounted(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "proc")
	if err := os.Symlink("/proc", link); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{"/proc": true, link: true, dir: false, filepath.Join(dir, "gone"): false} {
		if got, err := imageVolumeMounted(path); err != nil || got != want {
			t.Errorf("%s: %v, %v; want %v", path, got, err, want)
		}
	}
}
