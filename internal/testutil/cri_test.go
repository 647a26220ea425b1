package testutil

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llitfkitfk/containerd/internal/testimage"
)

func TestCRIRepoTag(t *testing.T) {
	for name, want := range map[string][2]string{
		"registry.k8s.io/pause:3.10":                              {"pause", "3.10"},
		"registry.k8s.io/e2e-test-images/busybox:1.29-2":          {"e2e-test-images/busybox", "1.29-2"},
		"gcr.io/k8s-staging-cri-tools/hostnet-nginx-amd64:latest": {"k8s-staging-cri-tools/hostnet-nginx-amd64", "latest"},
		"docker.io/library/busybox:latest":                        {"library/busybox", "latest"},
	} {
		repo, tag := criRepoTag(name)
		if repo != want[0] || tag != want[1] {
			t.Errorf("criRepoTag(%q) = %q, %q; want %q, %q", name, repo, tag, want[0], want[1])
		}
	}
}

func TestWriteCRIHosts(t *testing.T) {
	dir := t.TempDir()
	r := &Registry{URL: "https://127.0.0.1:5000", CA: &KeyPair{CertFile: "/x/ca.pem"}}
	if err := WriteCRIHosts(dir, r); err != nil {
		t.Fatal(err)
	}
	for _, host := range CRIMirroredHosts {
		b, err := os.ReadFile(filepath.Join(dir, host, "hosts.toml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`[host."https://127.0.0.1:5000"]`, `capabilities = ["pull", "resolve"]`, `ca = "/x/ca.pem"`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s/hosts.toml lacks %s:\n%s", host, want, b)
			}
		}
	}
}

// TestCRIBusyboxLayer builds the layer from the host's static busybox
// (the tests build it from Debian's dynamic one, which the build of this
// package's tests may not have yet): every applet a hard link to busybox,
// ipcs and pgrep the procps program, the accounts.
func TestCRIBusyboxLayer(t *testing.T) {
	procps := filepath.Join(t.TempDir(), "procps")
	if err := os.WriteFile(procps, []byte("procps"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := CRIBusyboxLayer(testimage.BusyboxBinary, procps, "extra:x:1000:1000::/:/bin/sh\n", "g:x:50000:extra\n")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*tar.Header{}
	bodies := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		files[h.Name], bodies[h.Name] = h, string(body)
	}
	for _, applet := range []string{"bin/sh", "bin/ls", "bin/hostname", "sbin/ip"} {
		if h := files[applet]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "bin/busybox" {
			t.Errorf("%s: %+v, want a hard link to bin/busybox", applet, h)
		}
	}
	for _, tool := range []string{"usr/bin/ipcs", "usr/bin/pgrep"} {
		if h := files[tool]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "usr/bin/procps" {
			t.Errorf("%s: %+v, want a hard link to usr/bin/procps", tool, h)
		}
	}
	if h := files["tmp/"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("tmp/: %+v, want mode 1777", h)
	}
	if p := bodies["etc/passwd"]; !strings.Contains(p, "www-data:x:33:33:") || !strings.HasSuffix(p, "extra:x:1000:1000::/:/bin/sh\n") {
		t.Errorf("etc/passwd:\n%s", p)
	}
	if g := bodies["etc/group"]; !strings.HasSuffix(g, "g:x:50000:extra\n") {
		t.Errorf("etc/group:\n%s", g)
	}
}
