//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	imagesapi "github.com/llitfkitfk/containerd/api/services/images/v1"
	"github.com/llitfkitfk/containerd/internal/testutil"
)

func randomData(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// ctrStdout runs ctr and returns its stdout alone, for commands whose
// output is data.
func (d *daemon) ctrStdout(args ...string) []byte {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctrBinary, append([]string{"-a", d.Address, "--timeout", "20s"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		d.t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// ingest writes data through `ctr content ingest` with its size and digest
// declared, from a file as a user would redirect it: ctr seeks its stdin
// when the daemon already has part or all of the data, which a pipe cannot.
func (d *daemon) ingest(ns, ref string, data []byte) digest.Digest {
	d.t.Helper()
	dgst := digest.FromBytes(data)
	out, err := d.ctrIn(d.dataFile(data), "-n", ns, "content", "ingest",
		"--expected-size", strconv.Itoa(len(data)), "--expected-digest", dgst.String(), ref)
	if err != nil {
		d.t.Fatalf("ingest %s: %v\n%s\ndaemon log:\n%s", ref, err, out, d.log)
	}
	return dgst
}

// dataFile returns data in an open file, positioned at its start.
func (d *daemon) dataFile(data []byte) *os.File {
	d.t.Helper()
	f, err := os.CreateTemp(d.dir, "data")
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { f.Close() })
	if _, err := f.Write(data); err != nil {
		d.t.Fatal(err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		d.t.Fatal(err)
	}
	return f
}

// noStartupGC keeps the collector from running until something is
// deleted, so that a test can mark what it ingests as a root before any
// collection could remove it. ctr ingests under no lease, so what it
// writes is otherwise fair game for the next collection, as in
// containerd. A dotted key, as the config text that follows is top-level.
const noStartupGC = `plugins."io.containerd.gc.v1.scheduler".startup_delay = "0s"` + "\n"

// gcRoot labels a blob as a root, so that it survives collections.
func (d *daemon) gcRoot(ns string, dgst digest.Digest) {
	d.t.Helper()
	d.ctr("-n", ns, "content", "label", dgst.String(), "containerd.io/gc.root=test")
}

// contentLine returns the `content ls` line of dgst, or "".
func contentLine(ls string, dgst digest.Digest) string {
	for _, line := range strings.Split(ls, "\n") {
		if strings.HasPrefix(line, dgst.String()) {
			return line
		}
	}
	return ""
}

func TestCtrContentIngestListGetLabelRemove(t *testing.T) {
	d := newDaemon(t, noStartupGC)
	d.start()

	small := randomData(1000, 1)
	large := randomData(3<<20+777, 2) // several 1 MiB messages each way
	sd := d.ingest("default", "small", small)
	ld := d.ingest("default", "large", large)
	// Removing small below runs a collection, which large must survive.
	d.gcRoot("default", ld)

	ls := d.ctr("content", "ls")
	line := contentLine(ls, sd)
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(sd.String()) + `\s+1kB\s`).MatchString(line) {
		t.Fatalf("content ls has no line for %s of 1kB:\n%s", sd, ls)
	}
	if contentLine(ls, ld) == "" {
		t.Fatalf("content ls lacks %s:\n%s", ld, ls)
	}
	if q := d.ctr("content", "ls", "-q"); !strings.Contains(q, sd.String()) || strings.Contains(q, "kB") {
		t.Fatalf("content ls -q:\n%s", q)
	}

	for dgst, want := range map[digest.Digest][]byte{sd: small, ld: large} {
		if got := d.ctrStdout("content", "get", dgst.String()); !bytes.Equal(got, want) {
			t.Fatalf("content get %s: %d bytes, differing from the %d ingested", dgst, len(got), len(want))
		}
	}

	d.ctr("content", "label", sd.String(), "k=v", "other=x")
	line = contentLine(d.ctr("content", "ls"), sd)
	if !strings.Contains(line, "k=v") || !strings.Contains(line, "other=x") {
		t.Fatalf("labels not listed: %q", line)
	}
	// Labels are set one by one; an empty value removes one.
	d.ctr("content", "label", sd.String(), "k=w", "other=")
	line = contentLine(d.ctr("content", "ls"), sd)
	if !strings.Contains(line, "k=w") || strings.Contains(line, "other=x") {
		t.Fatalf("labels after relabel: %q", line)
	}

	// Ingesting what is there already succeeds and changes nothing.
	d.ingest("default", "again", small)

	if out := d.ctr("content", "rm", sd.String()); !strings.Contains(out, sd.String()) {
		t.Fatalf("content rm prints %q", out)
	}
	if ls := d.ctr("content", "ls", "-q"); strings.Contains(ls, sd.String()) || !strings.Contains(ls, ld.String()) {
		t.Fatalf("content ls after rm:\n%s", ls)
	}
	if out, err := d.ctrErr("content", "get", sd.String()); err == nil || !strings.Contains(out, "not found") {
		t.Fatalf("content get of a removed blob: %v\n%s", err, out)
	}
}

func TestCtrContentIngestRejectsMismatch(t *testing.T) {
	d := newDaemon(t, noStartupGC)
	d.start()
	data := randomData(100000, 3)
	dgst := digest.FromBytes(data)
	wrongDigest := digest.FromString("something else")

	cases := []struct {
		name, size, digest, want string
	}{
		{"digest", strconv.Itoa(len(data)), wrongDigest.String(), "digest"},
		{"size", strconv.Itoa(len(data) - 1), dgst.String(), "size"},
		{"short input", strconv.Itoa(len(data) + 1), dgst.String(), "expected number of bytes"},
	}
	for i, c := range cases {
		out, err := d.ctrIn(d.dataFile(data), "content", "ingest",
			"--expected-size", c.size, "--expected-digest", c.digest, "bad-"+strconv.Itoa(i))
		if err == nil {
			t.Fatalf("%s mismatch accepted:\n%s", c.name, out)
		}
		if !strings.Contains(out, c.want) {
			t.Errorf("%s mismatch: message does not say %q:\n%s", c.name, c.want, out)
		}
	}
	ls := d.ctr("content", "ls", "-q")
	if strings.Contains(ls, dgst.String()) || strings.Contains(ls, wrongDigest.String()) {
		t.Fatalf("a rejected ingest was committed:\n%s", ls)
	}
	// The failed ingests can still be resumed or aborted.
	if active := d.ctr("content", "active"); !strings.Contains(active, "bad-0") {
		t.Fatalf("failed ingest not active:\n%s", active)
	}
}

// An ingest whose writer stalls is listed as active with what it has
// written so far, and completes once the rest arrives.
func TestCtrContentActive(t *testing.T) {
	d := newDaemon(t, noStartupGC)
	d.start()
	data := randomData(2<<20, 4)
	dgst := digest.FromBytes(data)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctrBinary, "-a", d.Address, "--timeout", "25s", "content", "ingest",
		"--expected-size", strconv.Itoa(len(data)), "--expected-digest", dgst.String(), "stalled")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	half := len(data) / 2
	if _, err := stdin.Write(data[:half]); err != nil {
		t.Fatal(err)
	}

	var active string
	deadline := time.Now().Add(15 * time.Second)
	for {
		active = d.ctr("content", "active")
		if strings.Contains(active, "stalled") && strings.Contains(active, "1.049MB") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stalled ingest not listed with half its data:\n%s", active)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ls := d.ctr("content", "ls", "-q"); strings.Contains(ls, dgst.String()) {
		t.Fatal("blob listed before its ingest completed")
	}

	stdin.Write(data[half:])
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ingest: %v\n%s", err, out.String())
	}
	if ls := d.ctr("content", "ls", "-q"); !strings.Contains(ls, dgst.String()) {
		t.Fatalf("completed ingest not listed:\n%s", ls)
	}
	if active := d.ctr("content", "active"); strings.Contains(active, "stalled") {
		t.Fatalf("completed ingest still active:\n%s", active)
	}
	if !bytes.Equal(d.ctrStdout("content", "get", dgst.String()), data) {
		t.Fatal("content differs")
	}
}

// An ingest cut off mid-stream leaves no blob and resumes where it
// stopped: ctr skips what the daemon already has.
func TestCtrContentResumeAfterKill(t *testing.T) {
	d := newDaemon(t, noStartupGC)
	d.start()
	data := randomData(3<<20, 5)
	dgst := digest.FromBytes(data)

	cmd := exec.Command(ctrBinary, "-a", d.Address, "content", "ingest",
		"--expected-size", strconv.Itoa(len(data)), "--expected-digest", dgst.String(), "cut")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdin.Write(data[:1<<20])
	deadline := time.Now().Add(15 * time.Second)
	for active := ""; !regexp.MustCompile(`(?m)^cut\s+1.049MB\s`).MatchString(active); active = d.ctr("content", "active") {
		if time.Now().After(deadline) {
			t.Fatalf("ingest never had 1 MiB written:\n%s", active)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()

	if ls := d.ctr("content", "ls", "-q"); strings.Contains(ls, dgst.String()) {
		t.Fatal("a cut-off ingest was committed")
	}
	// The lock is released once the daemon sees the stream end; the
	// resumed ingest waits for it (ctr retries a locked ref).
	d.ingest("default", "cut", data)
	if !bytes.Equal(d.ctrStdout("content", "get", dgst.String()), data) {
		t.Fatal("resumed blob differs")
	}
}

func TestCtrContentNamespaces(t *testing.T) {
	d := newDaemon(t, noStartupGC)
	d.start()
	data := randomData(5000, 6)
	dgst := d.ingest("a", "ref", data)

	if ls := d.ctr("-n", "a", "content", "ls", "-q"); !strings.Contains(ls, dgst.String()) {
		t.Fatalf("namespace a lacks its blob:\n%s", ls)
	}
	if ls := d.ctr("-n", "b", "content", "ls", "-q"); strings.Contains(ls, dgst.String()) {
		t.Fatalf("namespace b lists a's blob:\n%s", ls)
	}
	if out, err := d.ctrErr("-n", "b", "content", "get", dgst.String()); err == nil {
		t.Fatalf("namespace b reads a's blob:\n%s", out)
	}
	d.ingest("b", "ref", data)
	if ls := d.ctr("-n", "b", "content", "ls", "-q"); !strings.Contains(ls, dgst.String()) {
		t.Fatalf("namespace b lacks the blob it wrote:\n%s", ls)
	}
	d.gcRoot("b", dgst) // to outlive the collection a's removal runs
	d.ctr("-n", "a", "content", "rm", dgst.String())
	if ls := d.ctr("-n", "b", "content", "ls", "-q"); !strings.Contains(ls, dgst.String()) {
		t.Fatalf("removing a's blob removed b's:\n%s", ls)
	}
	if !bytes.Equal(d.ctrStdout("-n", "b", "content", "get", dgst.String()), data) {
		t.Fatal("b's blob differs")
	}
}

func TestCtrEventsContentDelete(t *testing.T) {
	d := newDaemon(t, noStartupGC)
	d.start()
	data := randomData(100, 7)
	dgst := digest.FromBytes(data)
	d.awaitEvent(func(line string) bool {
		return strings.Contains(line, "/content/delete") && strings.Contains(line, dgst.String())
	}, func() {
		d.ingest("default", "ev", data)
		d.ctr("content", "rm", dgst.String())
	})
}

// A daemon killed with -9 in the middle of a write shows no partial blob
// after it restarts, and the ingest resumes from what reached the disk.
func TestContentResumeAfterDaemonKill(t *testing.T) {
	d := newDaemon(t, noStartupGC)
	d.start()
	data := randomData(3<<20, 9)
	dgst := digest.FromBytes(data)

	cmd := exec.Command(ctrBinary, "-a", d.Address, "content", "ingest",
		"--expected-size", strconv.Itoa(len(data)), "--expected-digest", dgst.String(), "crash")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	stdin.Write(data[:2<<20])
	deadline := time.Now().Add(15 * time.Second)
	for active := ""; !regexp.MustCompile(`(?m)^crash\s+2.097MB\s`).MatchString(active); active = d.ctr("content", "active") {
		if time.Now().After(deadline) {
			t.Fatalf("ingest never had 2 MiB written:\n%s", active)
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.Cmd.Process.Kill() // SIGKILL: no chance to tidy up
	d.wait(10 * time.Second)
	cmd.Process.Kill()

	d2 := d.restart()
	if ls := d2.ctr("content", "ls", "-q"); strings.Contains(ls, dgst.String()) {
		t.Fatal("a partial write became visible as a blob")
	}
	if active := d2.ctr("content", "active"); !regexp.MustCompile(`(?m)^crash\s+2.097MB\s`).MatchString(active) {
		t.Fatalf("the ingest did not survive the crash with its offset:\n%s", active)
	}
	d2.ingest("default", "crash", data)
	if !bytes.Equal(d2.ctrStdout("content", "get", dgst.String()), data) {
		t.Fatal("resumed blob differs")
	}
}

// `content fetch` copies an image's content from a registry, with the
// registry flags, for this machine's platform (or all with
// --all-platforms), without unpacking; the image is recorded and keeps its
// content through a collection.
func TestCtrContentFetch(t *testing.T) {
	d := newDaemon(t, "")
	d.start()
	r := testutil.StartRegistry(t, testutil.RegistryOptions{User: "fetcher", Password: "secret"})
	index, host, err := testutil.MultiPlatformImage()
	if err != nil {
		t.Fatal(err)
	}
	ref := pushImage(t, r, "test/fetch", "v1", index)

	// What each manifest of the index needs: itself, its config, its layers.
	var idx ocispec.Index
	if err := json.Unmarshal(index.Blobs[index.Root.Digest], &idx); err != nil {
		t.Fatal(err)
	}
	blobsOf := map[digest.Digest][]digest.Digest{}
	for _, m := range idx.Manifests {
		var manifest ocispec.Manifest
		if err := json.Unmarshal(index.Blobs[m.Digest], &manifest); err != nil {
			t.Fatal(err)
		}
		blobsOf[m.Digest] = []digest.Digest{m.Digest, manifest.Config.Digest}
		for _, l := range manifest.Layers {
			blobsOf[m.Digest] = append(blobsOf[m.Digest], l.Digest)
		}
	}

	if out, err := d.ctrErr("content", "fetch", "--plain-http", ref); err == nil {
		t.Fatalf("fetch without credentials succeeded:\n%s", out)
	}
	d.ctr("content", "fetch", "--plain-http", "-u", "fetcher:secret", ref)
	if ls := d.ctr("leases", "ls", "-q"); strings.TrimSpace(ls) != "" {
		t.Errorf("fetch left a lease:\n%s", ls)
	}
	settle(d)
	ls := d.ctr("content", "ls", "-q")
	for _, dg := range append([]digest.Digest{index.Root.Digest}, blobsOf[host.Digest]...) {
		if !strings.Contains(ls, dg.String()) {
			t.Errorf("fetched content lacks %s:\n%s", dg, ls)
		}
	}
	for m, blobs := range blobsOf {
		if m == host.Digest {
			continue
		}
		// Another platform's layer; ctr 2.x fetches its manifest and
		// config too, 1.6 does not.
		if layer := blobs[len(blobs)-1]; strings.Contains(ls, layer.String()) {
			t.Errorf("layer %s of another platform fetched", layer)
		}
	}
	images := imagesapi.NewImagesClient(d.grpcConn())
	img, err := images.Get(apiCtx(t, "default", ""), &imagesapi.GetImageRequest{Name: ref})
	if err != nil || img.Image.Target.Digest != index.Root.Digest.String() {
		t.Fatalf("image %s after fetch: %v, %v", ref, img, err)
	}
	if active := d.ctr("content", "active"); strings.Count(active, "\n") != 1 {
		t.Errorf("fetch left ingests:\n%s", active)
	}

	d.ctr("content", "fetch", "--plain-http", "-u", "fetcher:secret", "--all-platforms", ref)
	settle(d)
	ls = d.ctr("content", "ls", "-q")
	for _, blobs := range blobsOf {
		for _, dg := range blobs {
			if !strings.Contains(ls, dg.String()) {
				t.Errorf("content after fetching all platforms lacks %s", dg)
			}
		}
	}
}
