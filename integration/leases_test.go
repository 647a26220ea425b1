//go:build integration

package integration

import (
	"regexp"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	contentapi "github.com/llitfkitfk/containerd/api/services/content/v1"
	leasesapi "github.com/llitfkitfk/containerd/api/services/leases/v1"
)

func TestCtrLeases(t *testing.T) {
	d := newDaemon(t, "")
	d.start()

	if out := d.ctr("leases", "create", "--id", "l1", "a=b"); strings.TrimSpace(out) != "l1" {
		t.Fatalf("leases create prints %q", out)
	}
	anon := strings.TrimSpace(d.ctr("leases", "create"))
	if anon == "" || strings.ContainsAny(anon, " \n") {
		t.Fatalf("leases create without id prints %q", anon)
	}
	if out, err := d.ctrErr("leases", "create", "--id", "l1"); err == nil || !strings.Contains(out, "already exists") {
		t.Fatalf("duplicate lease: %v\n%s", err, out)
	}

	ls := d.ctr("leases", "ls")
	if !regexp.MustCompile(`(?m)^l1\s.*\ba=b\b`).MatchString(ls) || !strings.Contains(ls, anon) {
		t.Fatalf("leases ls:\n%s", ls)
	}
	// ctr sets an expiry label on every lease it makes.
	if !strings.Contains(ls, "containerd.io/gc.expire=") {
		t.Errorf("leases ls shows no expiry:\n%s", ls)
	}
	if q := d.ctr("leases", "ls", "-q"); !regexp.MustCompile(`(?m)^l1$`).MatchString(q) {
		t.Fatalf("leases ls -q:\n%s", q)
	}
	if ls := d.ctr("-n", "other", "leases", "ls", "-q"); strings.TrimSpace(ls) != "" {
		t.Fatalf("another namespace lists leases:\n%s", ls)
	}

	d.ctr("leases", "rm", "l1")
	d.ctr("leases", "rm", "--sync", anon)
	if ls := d.ctr("leases", "ls", "-q"); strings.TrimSpace(ls) != "" {
		t.Fatalf("leases ls after rm:\n%s", ls)
	}
	if out, err := d.ctrErr("leases", "rm", "l1"); err == nil || !strings.Contains(out, "not found") {
		t.Fatalf("removing a removed lease: %v\n%s", err, out)
	}
}

// writeBlob writes data through the Content API, under lease if not empty.
func writeBlob(t *testing.T, c contentapi.ContentClient, ns, lease, ref string, data []byte) (digest.Digest, error) {
	t.Helper()
	dgst := digest.FromBytes(data)
	s, err := c.Write(apiCtx(t, ns, lease))
	if err != nil {
		return "", err
	}
	if err := s.Send(&contentapi.WriteContentRequest{Action: contentapi.WriteAction_WRITE, Ref: ref,
		Total: int64(len(data)), Expected: dgst.String(), Data: data}); err != nil {
		return "", err
	}
	if _, err := s.Recv(); err != nil {
		return "", err
	}
	if err := s.Send(&contentapi.WriteContentRequest{Action: contentapi.WriteAction_COMMIT,
		Offset: int64(len(data)), Total: int64(len(data)), Expected: dgst.String()}); err != nil {
		return "", err
	}
	if _, err := s.Recv(); err != nil {
		return "", err
	}
	return dgst, s.CloseSend()
}

// Content written under a lease survives garbage collection until the
// lease goes; content written under none is collected.
func TestLeaseHoldsContent(t *testing.T) {
	d := newDaemon(t, "")
	d.start()
	conn := d.grpcConn()
	content := contentapi.NewContentClient(conn)
	leases := leasesapi.NewLeasesClient(conn)

	d.ctr("leases", "create", "--id", "hold")
	held, err := writeBlob(t, content, "default", "hold", "held", randomData(70000, 10))
	if err != nil {
		t.Fatal(err)
	}
	loose, err := writeBlob(t, content, "default", "", "loose", randomData(70000, 11))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writeBlob(t, content, "default", "no-such-lease", "x", randomData(10, 12)); err == nil {
		t.Error("write under a lease that does not exist succeeded")
	}

	rs, err := leases.ListResources(apiCtx(t, "default", ""), &leasesapi.ListResourcesRequest{Id: "hold"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rs.Resources {
		found = found || (r.Type == "content" && r.Id == held.String())
	}
	if !found {
		t.Fatalf("lease resources %v lack %s", rs.Resources, held)
	}

	// A synchronous lease removal runs garbage collection.
	d.ctr("leases", "create", "--id", "trigger")
	d.ctr("leases", "rm", "--sync", "trigger")
	ls := d.ctr("content", "ls", "-q")
	if !strings.Contains(ls, held.String()) {
		t.Fatalf("leased blob collected:\n%s", ls)
	}
	if strings.Contains(ls, loose.String()) {
		t.Fatalf("unreferenced blob survived collection:\n%s", ls)
	}

	d.ctr("leases", "rm", "--sync", "hold")
	if ls := d.ctr("content", "ls", "-q"); strings.Contains(ls, held.String()) {
		t.Fatalf("blob kept after its lease went:\n%s", ls)
	}
}

// While ctr imports an image it holds a lease; once it is done the lease
// is gone and the image's references keep the content.
func TestCtrLeaseReleasedAfterImport(t *testing.T) {
	d := newDaemon(t, "")
	d.start()
	const name = "docker.io/library/leasetest:v1"
	img := buildOCIArchive(t, t.TempDir(), name, map[string]string{"a": "b"})
	d.ctr("images", "import", "--no-unpack", img.path)
	if ls := d.ctr("leases", "ls", "-q"); strings.TrimSpace(ls) != "" {
		t.Fatalf("import left a lease:\n%s", ls)
	}
	d.ctr("leases", "create", "--id", "trigger")
	d.ctr("leases", "rm", "--sync", "trigger")
	ls := d.ctr("content", "ls", "-q")
	for _, dg := range []digest.Digest{img.manifest.Digest, img.config.Digest, img.layer.Digest} {
		if !strings.Contains(ls, dg.String()) {
			t.Fatalf("image content %s collected:\n%s", dg, ls)
		}
	}
}
