package testutil

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/internal/testimage"
)

// The images critest and the crictl tests pull, built here from the
// host's static busybox and the static programs of internal/testimage/cri,
// and served by a loopback registry that hosts.toml mirrors put in place
// of registry.k8s.io, k8s.gcr.io, gcr.io and docker.io. Each image does
// what critest's specs check of the real one (see CRIImages).

// Names of the images, as critest (cri-tools v1.37.0) spells them.
const (
	CRIBusyboxImage = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
	CRINginxImage   = "registry.k8s.io/e2e-test-images/nginx:1.14-2"
	CRIHttpdImage   = "registry.k8s.io/e2e-test-images/httpd:2.4.39-4"
	// CRIPauseImage is the sandbox image of the daemons under test
	// (containerd 2.x's default sandbox_image).
	CRIPauseImage = "registry.k8s.io/pause:3.10"
	// CRIDockerBusyboxImage is what `crictl pull busybox` names.
	CRIDockerBusyboxImage = "docker.io/library/busybox:latest"
	criToolsRegistry      = "gcr.io/k8s-staging-cri-tools/"
)

// CRIMirroredHosts are the registries whose pulls the hosts.toml files of
// WriteCRIHosts send to the loopback registry.
var CRIMirroredHosts = []string{"registry.k8s.io", "k8s.gcr.io", "gcr.io", "docker.io"}

// CRIPrograms are the static programs the images run, built by
// BuildCRIPrograms.
type CRIPrograms struct {
	// Busybox is Debian's dynamically linked busybox.
	Busybox                      string
	Pause, Webserver, NoNewPrivs string
	// Procps is ipcs and pgrep, which the host's busybox lacks.
	Procps string
}

// BuildCRIPrograms builds the programs of internal/testimage/cri into dir,
// static (CGO_ENABLED=0) so that they need nothing of the image. repoRoot
// is this repository's top directory; busybox is taken from its bin/cri.
func BuildCRIPrograms(repoRoot, dir string) (CRIPrograms, error) {
	p := CRIPrograms{
		Busybox:    filepath.Join(CRIBinDir(repoRoot), "busybox", "busybox"),
		Pause:      filepath.Join(dir, "pause"),
		Webserver:  filepath.Join(dir, "webserver"),
		NoNewPrivs: filepath.Join(dir, "nonewprivs"),
		Procps:     filepath.Join(dir, "procps"),
	}
	args := []string{"build", "-trimpath", "-o", dir + "/"}
	for _, prog := range []string{"pause", "webserver", "nonewprivs", "procps"} {
		args = append(args, "./internal/testimage/cri/"+prog)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return p, fmt.Errorf("build the CRI test programs: %v\n%s", err, out)
	}
	return p, nil
}

// layerEntry is one file of a layer that TarLayer cannot express: a mode,
// an owner, a symlink.
type layerEntry struct {
	name     string
	mode     int64
	uid, gid int
	body     []byte
	link     string // a symlink's target
	hardlink string // the entry this one is a hard link to
	dir      bool
}

func tarEntries(entries []layerEntry) ([]byte, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: testimage.ModTime}
		switch {
		case e.dir:
			h.Typeflag = tar.TypeDir
		case e.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		case e.hardlink != "":
			h.Typeflag, h.Linkname = tar.TypeLink, e.hardlink
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// The accounts of the busybox image critest pulls (its users' names and
// ids are what the run-as-username specs and the test-image-user images
// resolve, www-data among them).
const (
	busyboxPasswd = "root:x:0:0:root:/root:/bin/sh\n" +
		"daemon:x:1:1:daemon:/usr/sbin:/bin/false\n" +
		"bin:x:2:2:bin:/bin:/bin/false\n" +
		"sys:x:3:3:sys:/dev:/bin/false\n" +
		"sync:x:4:100:sync:/bin:/bin/sync\n" +
		"mail:x:8:8:mail:/var/spool/mail:/bin/false\n" +
		"www-data:x:33:33:www-data:/var/www:/bin/false\n" +
		"operator:x:37:37:Operator:/var:/bin/false\n" +
		"nobody:x:65534:65534:nobody:/home:/bin/false\n"
	busyboxGroup = "root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:\ntty:x:5:\ndisk:x:6:\n" +
		"lp:x:7:\nmail:x:8:\nkmem:x:9:\nwheel:x:10:root\ncdrom:x:11:\ndialout:x:18:\nfloppy:x:19:\n" +
		"video:x:28:\naudio:x:29:\ntape:x:32:\nwww-data:x:33:\noperator:x:37:\nutmp:x:43:\n" +
		"plugdev:x:46:\nstaff:x:50:\nlock:x:54:\nnetdev:x:82:\nusers:x:100:\nnobody:x:65534:\n"
)

// CRIBusyboxLayer is a busybox root filesystem as the busybox image has
// it: busybox (Debian's dynamically linked build, bin/cri/busybox/busybox,
// with the libraries it loads at their paths) with every applet it lists
// hard-linked in place (critest runs top, pidof, netstat, brctl, ping,
// mount...), the procps program as ipcs and pgrep, the image's accounts
// (with extra lines appended to /etc/passwd and /etc/group) and the usual
// directories. Not the host's static busybox: its shell runs its own
// applets before it looks at PATH, and critest checks that a command
// masked in the image fails to run from sh.
func CRIBusyboxLayer(busybox, procps, extraPasswd, extraGroup string) ([]byte, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return nil, fmt.Errorf("the CRI test images need Debian's busybox (`make cri-deps` fetches it): %w", err)
	}
	procpsBin, err := os.ReadFile(procps)
	if err != nil {
		return nil, err
	}
	libs, err := sharedLibraries(busybox)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(busybox, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list-full: %w", busybox, err)
	}
	entries := []layerEntry{}
	for _, d := range []string{"bin", "dev", "etc", "home", "proc", "root", "sbin", "sys", "usr", "usr/bin", "usr/sbin",
		"var", "var/run", "var/spool", "var/spool/mail", "var/www"} {
		entries = append(entries, layerEntry{name: d + "/", mode: 0o755, dir: true})
	}
	entries = append(entries,
		layerEntry{name: "tmp/", mode: 0o1777, dir: true},
		layerEntry{name: "bin/busybox", mode: 0o755, body: bin},
		layerEntry{name: "usr/bin/procps", mode: 0o755, body: procpsBin},
		layerEntry{name: "lib/", mode: 0o755, dir: true},
		layerEntry{name: "lib64/", mode: 0o755, dir: true},
		layerEntry{name: "usr/bin/ipcs", mode: 0o755, hardlink: "usr/bin/procps"},
		layerEntry{name: "usr/bin/pgrep", mode: 0o755, hardlink: "usr/bin/procps"},
		layerEntry{name: "etc/passwd", mode: 0o644, body: []byte(busyboxPasswd + extraPasswd)},
		layerEntry{name: "etc/group", mode: 0o644, body: []byte(busyboxGroup + extraGroup)},
	)
	for _, lib := range libs {
		body, err := os.ReadFile(lib)
		if err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(lib, "/")
		for d := filepath.Dir(name); d != "lib" && d != "lib64" && d != "."; d = filepath.Dir(d) {
			entries = append(entries, layerEntry{name: d + "/", mode: 0o755, dir: true})
		}
		entries = append(entries, layerEntry{name: name, mode: 0o755, body: body})
	}
	applets := strings.Fields(string(out))
	sort.Strings(applets)
	for _, a := range applets {
		if a == "bin/busybox" || a == "usr/bin/ipcs" || a == "usr/bin/pgrep" {
			continue
		}
		// Hard links, as in the busybox image: critest masks /bin/ls
		// (a bind mount over it), which must not mask busybox itself,
		// as it would through a symlink.
		entries = append(entries, layerEntry{name: a, mode: 0o755, hardlink: "bin/busybox"})
	}
	return tarEntries(entries)
}

// sharedLibraries lists the libraries binary loads, and its loader, as
// ldd resolves them on this host; none for a static binary.
func sharedLibraries(binary string) ([]string, error) {
	out, err := exec.Command("ldd", binary).CombinedOutput()
	if err != nil && bytes.Contains(out, []byte("not a dynamic executable")) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", binary, err)
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
		// "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vdso has no file.
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		}
	}
	return libs, nil
}

// busyboxConfig is the busybox image's config: sh, with the usual PATH.
func busyboxConfig() ocispec.ImageConfig {
	return ocispec.ImageConfig{
		Cmd: []string{"sh"},
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	}
}

// CRIImages builds every image the CRI tests pull, by name; digested
// names are left out (their digests name bytes only the real registries
// hold). Each is what critest checks of the image of that name:
//   - busybox: sh and the applets; the accounts of busybox's /etc/passwd;
//   - nginx, httpd, hostnet-nginx: busybox with the webserver on :80 (the
//     hostnet one on :12003, its config file's port), nginx writing
//     /var/run/nginx.pid and titled "nginx: master process ...", httpd
//     logging under "httpd";
//   - nonewprivs: busybox with the nonewprivs program setuid root as its
//     entrypoint;
//   - pause (3.10, the sandbox image, and 3.9, which critest pulls from
//     two registries as one image): the pause program alone, run as
//     65535:65535 as Kubernetes' pause image is;
//   - gcr.io/k8s-staging-cri-tools/test-image-*: busybox with a file named
//     after the image (the -tags images share one), and the users the
//     -user-* images declare; test-image-predefined-group runs as 1000,
//     a member of group 50000 by the image's /etc/group.
func CRIImages(p CRIPrograms) (map[string]Image, error) {
	bbLayer, err := CRIBusyboxLayer(p.Busybox, p.Procps, "", "")
	if err != nil {
		return nil, err
	}
	platform := HostPlatform()
	images := map[string]Image{}
	var firstErr error
	add := func(name string, cfg ocispec.ImageConfig, layers ...[]byte) {
		if firstErr != nil {
			return
		}
		img, err := NewImage(platform, cfg, layers...)
		if err != nil {
			firstErr = fmt.Errorf("image %s: %w", name, err)
			return
		}
		images[name] = img
	}
	program := func(path, dest string, mode int64) []byte {
		body, err := os.ReadFile(path)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		var entries []layerEntry
		for d := filepath.Dir(dest); d != "."; d = filepath.Dir(d) {
			entries = append([]layerEntry{{name: d + "/", mode: 0o755, dir: true}}, entries...)
		}
		b, err := tarEntries(append(entries, layerEntry{name: dest, mode: mode, body: body}))
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return b
	}
	withEntrypoint := func(entrypoint ...string) ocispec.ImageConfig {
		cfg := busyboxConfig()
		cfg.Entrypoint, cfg.Cmd = entrypoint, nil
		return cfg
	}
	withUser := func(user string) ocispec.ImageConfig {
		cfg := busyboxConfig()
		cfg.User = user
		return cfg
	}
	file := func(name string) []byte { return TarLayer(Layer{name: name + "\n"}) }

	add(CRIBusyboxImage, busyboxConfig(), bbLayer)
	add(CRIDockerBusyboxImage, busyboxConfig(), bbLayer)

	nginx := withEntrypoint("/usr/sbin/nginx", "-addr", ":80", "-name", "nginx",
		"-pidfile", "/var/run/nginx.pid", "-title", "nginx: master process nginx -g daemon off;")
	nginx.ExposedPorts = map[string]struct{}{"80/tcp": {}}
	nginxLayer := program(p.Webserver, "usr/sbin/nginx", 0o755)
	add(CRINginxImage, nginx, bbLayer, nginxLayer)
	hostnet := withEntrypoint("/usr/sbin/nginx", "-addr", ":12003", "-name", "nginx",
		"-pidfile", "/var/run/nginx.pid", "-title", "nginx: master process nginx -g daemon off;")
	add(criToolsRegistry+"hostnet-nginx-"+platform.Architecture+":latest", hostnet, bbLayer, nginxLayer)
	add(CRIHttpdImage, withEntrypoint("/usr/local/apache2/bin/httpd", "-addr", ":80", "-name", "httpd"),
		bbLayer, program(p.Webserver, "usr/local/apache2/bin/httpd", 0o755))

	// Owned by root (tar's default uid 0) and setuid.
	add("registry.k8s.io/e2e-test-images/nonewprivs:1.3", withEntrypoint("/usr/local/bin/nnp"),
		bbLayer, program(p.NoNewPrivs, "usr/local/bin/nnp", 0o4755))

	// Two releases, two images (critest counts the tags of 3.9's).
	pauseLayer := program(p.Pause, "pause", 0o755)
	for _, version := range []string{"3.10", "3.9"} {
		pause := ocispec.ImageConfig{Entrypoint: []string{"/pause"}, User: "65535:65535", WorkingDir: "/",
			Labels: map[string]string{"version": version}}
		add("registry.k8s.io/pause:"+version, pause, pauseLayer)
	}

	for _, n := range []string{"test-image-latest:latest", "test-image-1:latest", "test-image-2:latest",
		"test-image-3:latest"} {
		add(criToolsRegistry+n, busyboxConfig(), bbLayer, file(strings.TrimSuffix(n, ":latest")))
	}
	for _, tag := range []string{"1", "2", "3"} {
		add(criToolsRegistry+"test-image-tags:"+tag, busyboxConfig(), bbLayer, file("same-image"))
	}
	for _, tag := range []string{"test", "all"} {
		add(criToolsRegistry+"test-image-tag:"+tag, busyboxConfig(), bbLayer, file(tag))
	}
	for name, user := range map[string]string{
		"test-image-user-uid":            "1002",
		"test-image-user-username":       "www-data",
		"test-image-user-uid-group":      "1003:1004",
		"test-image-user-username-group": "www-data:1004",
	} {
		add(criToolsRegistry+name+":latest", withUser(user), bbLayer)
	}
	groupLayer, err := CRIBusyboxLayer(p.Busybox, p.Procps, "default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n",
		"default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n")
	if err != nil {
		return nil, err
	}
	add(criToolsRegistry+"test-image-predefined-group:latest", withUser("1000"), groupLayer)
	return images, firstErr
}

// criRepoTag splits an image name into the repository path within its
// registry and the tag: "registry.k8s.io/pause:3.10" is "pause", "3.10".
func criRepoTag(name string) (repo, tag string) {
	i := strings.LastIndex(name, ":")
	repo, tag = name[:i], name[i+1:]
	return repo[strings.Index(repo, "/")+1:], tag
}

// PushCRIImages pushes images to r, each under its name's path within its
// registry, which is where a pull through the mirrors of WriteCRIHosts
// asks for it (registry.k8s.io/pause:3.10 as pause:3.10).
func PushCRIImages(r *Registry, images map[string]Image) error {
	names := make([]string, 0, len(images))
	for n := range images {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		repo, tag := criRepoTag(n)
		if err := r.Push(repo, tag, images[n]); err != nil {
			return fmt.Errorf("push %s as %s:%s: %w", n, repo, tag, err)
		}
	}
	return nil
}

// WriteCRIHosts writes into configPath (a daemon's registry config_path)
// a hosts.toml for each of CRIMirroredHosts that sends pulls and
// resolves to r, trusting r's CA; pushes would still go to the real
// registry, which no test does.
func WriteCRIHosts(configPath string, r *Registry) error {
	for _, host := range CRIMirroredHosts {
		dir := filepath.Join(configPath, host)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		server := "https://" + host
		if host == "docker.io" {
			server = "https://registry-1.docker.io"
		}
		var b strings.Builder
		fmt.Fprintf(&b, "server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", server, r.URL)
		if r.CA != nil {
			fmt.Fprintf(&b, "  ca = %q\n", r.CA.CertFile)
		}
		if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}
