package testutil

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/internal/testimage"
)

// Tests of pulling and pushing talk to a real registry: Debian's
// docker-registry (distribution 2.8.2), run on a free loopback port with
// its storage in a temporary directory.

// RegistryBinary is the registry the tests run; `make test-deps` installs
// it (Debian's docker-registry package).
const RegistryBinary = "/usr/bin/docker-registry"

// htpasswdBinary writes the registry's bcrypt password file; `make
// test-deps` installs it (apache2-utils).
const htpasswdBinary = "/usr/bin/htpasswd"

// RegistryOptions choose how a test registry is reached.
type RegistryOptions struct {
	// User and Password, if User is set, are the only credentials the
	// registry accepts (htpasswd basic auth); without them it answers 401.
	User, Password string
	// TLS serves https with a certificate for 127.0.0.1 issued by a test
	// CA of the registry's own (Registry.CA).
	TLS bool
}

// Registry is a running docker-registry.
type Registry struct {
	// Host is host:port, as an image reference names the registry.
	Host string
	// URL is the scheme and Host.
	URL string
	// CA issued the server certificate when the registry serves TLS.
	CA   *KeyPair
	Dir  string
	opts RegistryOptions
	// Client reaches the registry, trusting CA, with the credentials.
	Client *http.Client
	proc   *Process
	log    bytes.Buffer
}

// StartRegistry runs a registry until the test ends. A missing binary
// fails the test: these tests are not optional.
func StartRegistry(t testing.TB, opts RegistryOptions) *Registry {
	t.Helper()
	r, err := NewRegistry(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close()
		if t.Failed() {
			t.Logf("registry %s log:\n%s", r.Host, r.Log())
		}
	})
	return r
}

// NewRegistry runs a registry keeping everything under dir, and waits
// until it answers on /v2/. Close stops it.
func NewRegistry(dir string, opts RegistryOptions) (*Registry, error) {
	if _, err := os.Stat(RegistryBinary); err != nil {
		return nil, fmt.Errorf("the registry tests need %s (`make test-deps` installs Debian's docker-registry): %w", RegistryBinary, err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &Registry{Host: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir, opts: opts}
	storage := filepath.Join(dir, "storage")
	if err := os.MkdirAll(storage, 0o755); err != nil {
		return nil, err
	}
	var cfg strings.Builder
	// Errors only: tests print the log when they fail, and the access
	// log of a pull is long; FaultProxy records requests where needed.
	fmt.Fprintf(&cfg, "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n")
	fmt.Fprintf(&cfg, "storage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\n", storage)
	// Upload purging would only start a goroutine that scans storage.
	fmt.Fprintf(&cfg, "  maintenance:\n    uploadpurging:\n      enabled: false\n")
	fmt.Fprintf(&cfg, "http:\n  addr: %s\n", r.Host)
	scheme := "http"
	transport := &http.Transport{}
	if opts.TLS {
		scheme = "https"
		if r.CA, err = issue(dir, "registry-ca", nil, nil); err != nil {
			return nil, err
		}
		srv, err := issue(dir, "registry", r.CA, net.ParseIP("127.0.0.1"))
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&cfg, "  tls:\n    certificate: %s\n    key: %s\n", srv.CertFile, srv.KeyFile)
		pool := x509.NewCertPool()
		pool.AddCert(r.CA.Cert)
		transport.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	if opts.User != "" {
		out, err := exec.Command(htpasswdBinary, "-Bbn", opts.User, opts.Password).Output()
		if err != nil {
			return nil, fmt.Errorf("htpasswd (`make test-deps` installs apache2-utils): %w", err)
		}
		file := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(file, out, 0o600); err != nil {
			return nil, err
		}
		fmt.Fprintf(&cfg, "auth:\n  htpasswd:\n    realm: test-registry\n    path: %s\n", file)
	}
	config := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(config, []byte(cfg.String()), 0o644); err != nil {
		return nil, err
	}
	r.URL = scheme + "://" + r.Host
	r.Client = &http.Client{Transport: transport, Timeout: time.Minute}

	cmd := exec.Command(RegistryBinary, "serve", config)
	cmd.Stdout, cmd.Stderr = &r.log, &r.log
	// The registry reads these before its config file; the host's must
	// not change what the test set.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	if r.proc, err = StartProcess(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", RegistryBinary, err)
	}
	if err := r.waitReady(15 * time.Second); err != nil {
		r.Close()
		return nil, fmt.Errorf("%w\nregistry log:\n%s", err, r.Log())
	}
	return r, nil
}

// waitReady waits until /v2/ answers at all: with auth it answers 401,
// which is as good a sign of life as 200.
func (r *Registry) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := r.Client.Get(r.URL + "/v2/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-r.proc.Exited:
			return fmt.Errorf("registry exited before it served %s: %v", r.URL, r.proc.WaitErr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("registry at %s does not answer after %v: %v", r.URL, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log is what the registry wrote so far (the output buffer is only
// written by the registry's copy goroutine until it exits, so read it
// after Close for a complete, race-free view).
func (r *Registry) Log() string {
	select {
	case <-r.proc.Exited:
		return r.log.String()
	default:
		return "(registry still running)"
	}
}

// Close stops the registry.
func (r *Registry) Close() {
	if r.proc != nil {
		r.proc.Stop(5 * time.Second)
	}
}

// Ref is the reference of repo:tag in this registry.
func (r *Registry) Ref(repo, tag string) string { return r.Host + "/" + repo + ":" + tag }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// issue is Issue for NewRegistry, which the benchmark uses too: a
// failure comes back as an error rather than through a testing.TB.
func issue(dir, name string, parent *KeyPair, ip net.IP) (kp *KeyPair, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("issue certificate %s: %v", name, r)
		}
	}()
	return Issue(panicTB{}, dir, name, parent, ip), nil
}

// panicTB turns Issue's Fatal into a panic, which issue recovers.
type panicTB struct{ testing.TB }

func (panicTB) Helper()           {}
func (panicTB) Fatal(args ...any) { panic(fmt.Sprint(args...)) }

// Image is an image in memory: its root descriptor (a manifest or an
// index) and every blob under it, the root's bytes among them.
type Image struct {
	Root  ocispec.Descriptor
	Blobs map[digest.Digest][]byte
	// Platform is what a single-platform image's config says.
	Platform ocispec.Platform
}

// Layer is an uncompressed layer tar's files: path to content; a path
// ending in "/" is a directory.
type Layer map[string]string

// TarLayer writes files as a tar, in a stable order.
func TarLayer(files Layer) []byte {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, name := range names {
		h := &tar.Header{Name: name, ModTime: testimage.ModTime, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(files[name]))}
		if strings.HasSuffix(name, "/") {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		tw.WriteHeader(h)
		tw.Write([]byte(files[name]))
	}
	tw.Close()
	return b.Bytes()
}

// HostPlatform is linux on this machine's architecture, as the images the
// tests run declare it.
func HostPlatform() ocispec.Platform {
	p := ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if runtime.GOARCH == "arm" {
		p.Variant = "v7"
	}
	return p
}

// NewImage builds an image of platform: layerTars gzipped in order as its
// layers, cfg its runtime config.
func NewImage(platform ocispec.Platform, cfg ocispec.ImageConfig, layerTars ...[]byte) (Image, error) {
	img := Image{Blobs: map[digest.Digest][]byte{}, Platform: platform}
	var layers []ocispec.Descriptor
	var diffIDs []digest.Digest
	for _, lt := range layerTars {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(lt)
		if err := zw.Close(); err != nil {
			return Image{}, err
		}
		layers = append(layers, img.add(ocispec.MediaTypeImageLayerGzip, gz.Bytes()))
		diffIDs = append(diffIDs, digest.FromBytes(lt))
	}
	config, err := json.Marshal(ocispec.Image{
		Platform: platform,
		Config:   cfg,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	})
	if err != nil {
		return Image{}, err
	}
	manifest, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    img.add(ocispec.MediaTypeImageConfig, config),
		Layers:    layers,
	})
	if err != nil {
		return Image{}, err
	}
	img.Root = img.add(ocispec.MediaTypeImageManifest, manifest)
	return img, nil
}

func (img *Image) add(mediaType string, b []byte) ocispec.Descriptor {
	d := digest.FromBytes(b)
	img.Blobs[d] = b
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
}

// BusyboxLayer is the layer of testimage's busybox image: the host's
// static busybox, its applets and the directories a container needs.
func BusyboxLayer() ([]byte, error) {
	dir, err := os.MkdirTemp("", "busybox-layer")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "busybox.tar")
	if err := testimage.WriteBusybox(path, "busybox"); err != nil {
		return nil, err
	}
	layout, err := ReadLayout(path)
	if err != nil {
		return nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(layout.Blobs[layout.Root.Digest], &m); err != nil {
		return nil, err
	}
	if len(m.Layers) != 1 {
		return nil, fmt.Errorf("busybox image has %d layers, want 1", len(m.Layers))
	}
	zr, err := gzip.NewReader(bytes.NewReader(layout.Blobs[m.Layers[0].Digest]))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// BusyboxImage is a runnable image for the host's platform: busybox's
// layer, then a layer of extra files (if any), with testimage's busybox
// config.
func BusyboxImage(extra Layer) (Image, error) {
	bb, err := BusyboxLayer()
	if err != nil {
		return Image{}, err
	}
	layers := [][]byte{bb}
	if len(extra) > 0 {
		layers = append(layers, TarLayer(extra))
	}
	return NewImage(HostPlatform(), testimage.BusyboxConfig, layers...)
}

// NewIndex builds a multi-platform image: an OCI index of the images'
// manifests, each entry carrying its image's platform.
func NewIndex(images ...Image) (Image, error) {
	idx := Image{Blobs: map[digest.Digest][]byte{}}
	var entries []ocispec.Descriptor
	for _, img := range images {
		for d, b := range img.Blobs {
			idx.Blobs[d] = b
		}
		entry := img.Root
		p := img.Platform
		entry.Platform = &p
		entries = append(entries, entry)
	}
	b, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: entries,
	})
	if err != nil {
		return Image{}, err
	}
	idx.Root = idx.add(ocispec.MediaTypeImageIndex, b)
	return idx, nil
}

// MultiPlatformImage is an index of three images: a runnable busybox for
// the host whose /platform names the host's platform, and images for two
// other platforms (linux/arm64 and linux/arm/v7, or linux/amd64 on an
// arm64 host) holding only their own /platform. It returns the index and
// the host's manifest descriptor, which a pull for this machine picks.
func MultiPlatformImage() (index Image, host ocispec.Descriptor, err error) {
	hp := HostPlatform()
	hostImg, err := BusyboxImage(Layer{"platform": platformString(hp) + "\n"})
	if err != nil {
		return Image{}, ocispec.Descriptor{}, err
	}
	images := []Image{hostImg}
	for _, p := range []ocispec.Platform{
		{OS: "linux", Architecture: "arm64"},
		{OS: "linux", Architecture: "arm", Variant: "v7"},
		{OS: "linux", Architecture: "amd64"},
	} {
		if p.Architecture == hp.Architecture || len(images) == 3 {
			continue
		}
		img, err := NewImage(p, testimage.BusyboxConfig, TarLayer(Layer{"platform": platformString(p) + "\n"}))
		if err != nil {
			return Image{}, ocispec.Descriptor{}, err
		}
		images = append(images, img)
	}
	index, err = NewIndex(images...)
	return index, hostImg.Root, err
}

func platformString(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// ReadLayout reads an OCI image-layout tar holding one image (as
// testimage writes them) into memory.
func ReadLayout(path string) (Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return Image{}, err
	}
	defer f.Close()
	img := Image{Blobs: map[digest.Digest][]byte{}}
	var index []byte
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Image{}, fmt.Errorf("%s: %w", path, err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return Image{}, fmt.Errorf("%s: %w", path, err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		switch {
		case name == "index.json":
			index = b
		case strings.HasPrefix(name, "blobs/sha256/"):
			img.Blobs[digest.NewDigestFromEncoded(digest.SHA256, strings.TrimPrefix(name, "blobs/sha256/"))] = b
		}
	}
	var idx ocispec.Index
	if err := json.Unmarshal(index, &idx); err != nil {
		return Image{}, fmt.Errorf("%s: index.json: %w", path, err)
	}
	if len(idx.Manifests) != 1 {
		return Image{}, fmt.Errorf("%s: index.json has %d manifests, want 1", path, len(idx.Manifests))
	}
	img.Root = idx.Manifests[0]
	img.Root.Annotations = nil
	if img.Root.Platform != nil {
		img.Platform = *img.Root.Platform
	}
	return img, nil
}

// WriteLayout writes img as an OCI image-layout tar at path, named name by
// containerd's image name annotation, for `ctr images import`.
func (img Image) WriteLayout(path, name string) error {
	root := img.Root
	root.Annotations = map[string]string{"io.containerd.image.name": name}
	return testimage.WriteLayout(path, root, img.Blobs)
}

// Push uploads img to repo and tags its root tag: every blob that is not
// a manifest or index first (monolithic uploads: POST, then PUT with the
// digest), then the manifests under it, and the root last, so that the
// registry never holds a manifest whose blobs are missing.
func (r *Registry) Push(repo, tag string, img Image) error {
	var manifests []ocispec.Descriptor
	if img.Root.MediaType == ocispec.MediaTypeImageIndex {
		var idx ocispec.Index
		if err := json.Unmarshal(img.Blobs[img.Root.Digest], &idx); err != nil {
			return err
		}
		manifests = idx.Manifests
	}
	isManifest := map[digest.Digest]bool{img.Root.Digest: true}
	for _, m := range manifests {
		isManifest[m.Digest] = true
	}
	for d, b := range img.Blobs {
		if !isManifest[d] {
			if err := r.PushBlob(repo, b); err != nil {
				return err
			}
		}
	}
	for _, m := range manifests {
		if err := r.PushManifest(repo, m.Digest.String(), m.MediaType, img.Blobs[m.Digest]); err != nil {
			return err
		}
	}
	return r.PushManifest(repo, tag, img.Root.MediaType, img.Blobs[img.Root.Digest])
}

// PushBlob uploads b to repo.
func (r *Registry) PushBlob(repo string, b []byte) error {
	resp, err := r.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("start upload to %s: %s", repo, resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return fmt.Errorf("upload location: %w", err)
	}
	q := loc.Query()
	q.Set("digest", digest.FromBytes(b).String())
	loc.RawQuery = q.Encode()
	base, _ := url.Parse(r.URL)
	resp, err = r.do(http.MethodPut, base.ResolveReference(loc).String(), "application/octet-stream", b)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("upload blob to %s: %s: %s", repo, resp.Status, msg)
	}
	return nil
}

// PushManifest puts manifest (or index) b to repo under ref, a tag or a
// digest.
func (r *Registry) PushManifest(repo, ref, mediaType string, b []byte) error {
	resp, err := r.do(http.MethodPut, "/v2/"+repo+"/manifests/"+ref, mediaType, b)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("put manifest %s:%s: %s: %s", repo, ref, resp.Status, msg)
	}
	return nil
}

// ManifestDigest asks the registry which digest repo:ref has (HEAD, with
// every manifest media type accepted); "" if it has none.
func (r *Registry) ManifestDigest(repo, ref string) (digest.Digest, error) {
	req, err := http.NewRequest(http.MethodHead, r.URL+"/v2/"+repo+"/manifests/"+ref, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", strings.Join([]string{
		ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex,
		"application/vnd.docker.distribution.manifest.v2+json",
		"application/vnd.docker.distribution.manifest.list.v2+json",
	}, ", "))
	resp, err := r.send(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	case http.StatusNotFound:
		return "", nil
	}
	return "", fmt.Errorf("HEAD manifest %s:%s: %s", repo, ref, resp.Status)
}

func (r *Registry) do(method, target, contentType string, body []byte) (*http.Response, error) {
	if strings.HasPrefix(target, "/") {
		target = r.URL + target
	}
	req, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return r.send(req)
}

func (r *Registry) send(req *http.Request) (*http.Response, error) {
	if r.opts.User != "" {
		req.SetBasicAuth(r.opts.User, r.opts.Password)
	}
	resp, err := r.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	return resp, nil
}

// Fault is what a FaultProxy does to the requests it is set for.
type Fault string

const (
	// FaultWrongDigest serves a blob with its last byte changed: the
	// right size, the wrong digest.
	FaultWrongDigest Fault = "wrong-digest"
	// FaultTruncate serves half a blob, with a Content-Length that says
	// so: the body ends cleanly, short.
	FaultTruncate Fault = "truncate"
	// FaultDropOnce answers the first GET of a blob with its full
	// Content-Length and half its bytes, then drops the connection;
	// later requests pass, so that a client that resumes with a Range
	// gets the rest.
	FaultDropOnce Fault = "drop-once"
	// FaultDropThenFail drops the first GET of a blob mid-way as
	// FaultDropOnce does, and answers every later request for it 503,
	// so that the transfer fails with part of the blob fetched.
	FaultDropThenFail Fault = "drop-then-fail"
	// FaultStall answers a GET of a blob with its full Content-Length
	// and half its bytes, then waits, the connection open, until the
	// client hangs up (at most a minute): a download the client is in
	// the middle of, for a test to kill it.
	FaultStall Fault = "stall"
	// FaultUnauthorized answers 401 even to a request with the token the
	// proxy issued (with RequireToken(true)), or to every request otherwise.
	FaultUnauthorized Fault = "unauthorized"
	// FaultUnavailable answers 503 to every request.
	FaultUnavailable Fault = "unavailable"
	// FaultMediaType serves a manifest with a media type nobody knows.
	FaultMediaType Fault = "media-type"
)

// UnknownMediaType is the Content-Type FaultMediaType answers with.
const UnknownMediaType = "application/vnd.example.unknown.v1+json"

// ProxiedRequest is one request a FaultProxy saw.
type ProxiedRequest struct {
	Method, Path string
	// Range is the request's Range header.
	Range string
	// Fault is what the proxy did to it, "" if it passed.
	Fault Fault
}

// FaultProxy is a reverse proxy in front of a Registry that records the
// requests it sees and breaks the ones a fault is set for. With
// RequireToken(true) it also stands for a token-authenticated registry: a
// request without its bearer token gets a Bearer challenge naming the
// proxy's /token endpoint, which hands the token out to anyone.
type FaultProxy struct {
	// Host and URL are the proxy's, for references and hosts.toml.
	Host, URL string

	target *Registry
	proxy  *httputil.ReverseProxy
	srv    *http.Server
	lis    net.Listener

	mu           sync.Mutex
	requireToken bool
	faults       map[string]Fault
	dropped      map[string]bool
	requests     []ProxiedRequest
}

// proxyToken is the bearer token the proxy issues and expects.
const proxyToken = "test-token"

// StartFaultProxy runs a plain-http proxy to r on a loopback port until
// the test ends.
func StartFaultProxy(t testing.TB, r *Registry) *FaultProxy {
	t.Helper()
	p, err := NewFaultProxy(r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// NewFaultProxy runs a plain-http proxy to r on a loopback port; Close
// stops it.
func NewFaultProxy(r *Registry) (*FaultProxy, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	target, _ := url.Parse(r.URL)
	p := &FaultProxy{
		Host: lis.Addr().String(), URL: "http://" + lis.Addr().String(),
		target: r, lis: lis, faults: map[string]Fault{}, dropped: map[string]bool{},
	}
	p.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// The registry writes upload locations from the Host
			// header: keep the proxy's, so clients come back here.
			pr.Out.Host = pr.In.Host
			if r.opts.User != "" {
				pr.Out.SetBasicAuth(r.opts.User, r.opts.Password)
			}
		},
		Transport: r.Client.Transport,
	}
	p.srv = &http.Server{Handler: p}
	go p.srv.Serve(lis)
	return p, nil
}

// Close stops the proxy.
func (p *FaultProxy) Close() { p.srv.Close() }

// Set makes requests whose path ends in key (a blob digest, or a
// manifest's tag or digest) suffer fault; "" clears it.
func (p *FaultProxy) Set(key string, fault Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if fault == "" {
		delete(p.faults, key)
	} else {
		p.faults[key] = fault
	}
}

// RequireToken turns the proxy's bearer-token challenge on or off.
func (p *FaultProxy) RequireToken(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requireToken = on
}

// Requests returns the requests the proxy has seen, oldest first.
func (p *FaultProxy) Requests() []ProxiedRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ProxiedRequest(nil), p.requests...)
}

func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == "/token" {
		p.mu.Lock()
		p.requests = append(p.requests, ProxiedRequest{Method: req.Method, Path: req.URL.Path})
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"token":%q,"access_token":%q,"expires_in":300}`, proxyToken, proxyToken)
		return
	}
	key := req.URL.Path[strings.LastIndex(req.URL.Path, "/")+1:]
	p.mu.Lock()
	fault := p.faults[key]
	switch {
	case fault == FaultDropOnce && (req.Method != http.MethodGet || p.dropped[key]):
		fault = ""
	case fault == FaultDropThenFail && p.dropped[key]:
		fault = FaultUnavailable
	}
	if fault == FaultDropOnce || fault == FaultDropThenFail {
		p.dropped[key] = true
	}
	p.requests = append(p.requests, ProxiedRequest{Method: req.Method, Path: req.URL.Path, Range: req.Header.Get("Range"), Fault: fault})
	requireToken := p.requireToken
	p.mu.Unlock()

	if requireToken && req.Header.Get("Authorization") != "Bearer "+proxyToken || fault == FaultUnauthorized {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="test-registry",scope="repository:test:pull"`, p.URL+"/token"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
		return
	}
	if fault == FaultUnavailable {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"errors":[{"code":"UNAVAILABLE","message":"service unavailable"}]}`)
		return
	}
	// The token is the proxy's; the registry behind it knows none.
	req.Header.Del("Authorization")
	switch fault {
	case FaultWrongDigest, FaultTruncate, FaultDropOnce, FaultDropThenFail, FaultMediaType, FaultStall:
		p.serveBroken(w, req, fault)
	default:
		p.proxy.ServeHTTP(w, req)
	}
}

// serveBroken fetches what req asks for from the registry and serves it
// broken as fault says.
func (p *FaultProxy) serveBroken(w http.ResponseWriter, req *http.Request, fault Fault) {
	out, err := http.NewRequest(req.Method, p.target.URL+req.URL.RequestURI(), nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	out.Header = req.Header.Clone()
	resp, err := p.target.send(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	if resp.StatusCode != http.StatusOK {
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
		return
	}
	switch fault {
	case FaultMediaType:
		w.Header().Set("Content-Type", UnknownMediaType)
	case FaultWrongDigest:
		if len(body) > 0 {
			body[len(body)-1] ^= 0xff
		}
	case FaultTruncate:
		body = body[:len(body)/2]
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	case FaultDropOnce, FaultDropThenFail, FaultStall:
		// Promise the whole blob, send half, hang up: what a
		// registry whose connection breaks mid-layer looks like;
		// or, stalling, wait for the client to hang up.
		conn, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\nDocker-Content-Digest: %s\r\n\r\n",
			resp.Header.Get("Content-Type"), len(body), resp.Header.Get("Docker-Content-Digest"))
		bw.Write(body[:len(body)/2])
		bw.Flush()
		if fault == FaultStall {
			conn.SetReadDeadline(time.Now().Add(time.Minute))
			io.Copy(io.Discard, conn)
		}
		return
	}
	w.WriteHeader(http.StatusOK)
	if req.Method != http.MethodHead {
		w.Write(body)
	}
}
