//go:build integration

package integration

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	contentapi "github.com/llitfkitfk/containerd/api/services/content/v1"
	imagesapi "github.com/llitfkitfk/containerd/api/services/images/v1"
	leasesapi "github.com/llitfkitfk/containerd/api/services/leases/v1"
	"github.com/llitfkitfk/containerd/api/types"
)

// Many clients write at once, so their commits share transactions (group
// commit); the daemon is killed with SIGKILL in the middle. Every write a
// client was told had succeeded is there after the restart, in its
// namespace, both by get and by list (which answers from memory).
func TestWritesSurviveKill(t *testing.T) {
	d := newDaemon(t, noStartupGC)
	d.start()
	conn := d.grpcConn()
	imgs, cs := imagesapi.NewImagesClient(conn), contentapi.NewContentClient(conn)
	leases := leasesapi.NewLeasesClient(conn)

	const writers = 32
	nss := []string{"kill-a", "kill-b", "kill-c", "kill-d"}
	type done struct{ ns, image, blob string }
	var (
		mu        sync.Mutex
		succeeded []done
		wg        sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := range writers {
		ns := nss[w%len(nss)]
		// Each writer's blobs are held by its lease: without one, a
		// collection between a blob's commit and its image's would rightly
		// take it.
		lease, err := leases.Create(apiCtx(t, ns, ""), &leasesapi.CreateRequest{Id: fmt.Sprint("writer-", w)})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			ctx := apiCtx(t, ns, lease.Lease.Id)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				data := fmt.Appendf(nil, "writer %d blob %d %s", w, i, time.Now())
				dgst := fmt.Sprintf("sha256:%x", sha256.Sum256(data))
				if err := writeSmallBlob(ctx, cs, fmt.Sprintf("w%d-%d", w, i), data, dgst); err != nil {
					return // the daemon is gone
				}
				name := fmt.Sprintf("example.com/w%d:%d", w, i)
				_, err := imgs.Create(ctx, &imagesapi.CreateImageRequest{Image: &imagesapi.Image{
					Name:   name,
					Labels: map[string]string{"writer": fmt.Sprint(w)},
					Target: &types.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: dgst, Size: int64(len(data))},
				}})
				if err != nil {
					return
				}
				mu.Lock()
				succeeded = append(succeeded, done{ns, name, dgst})
				mu.Unlock()
			}
		})
	}
	// Kill once a few hundred writes have landed, with all writers busy.
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(succeeded)
		mu.Unlock()
		if n >= 300 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d writes succeeded in a minute", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.Cmd.Process.Kill()
	d.wait(10 * time.Second)
	close(stop)
	wg.Wait()
	t.Logf("%d image and blob writes succeeded before the kill", len(succeeded))

	d2 := d.restart()
	conn2 := d2.grpcConn()
	imgs2, cs2 := imagesapi.NewImagesClient(conn2), contentapi.NewContentClient(conn2)
	listed := map[string]map[string]bool{}
	for _, ns := range nss {
		resp, err := imgs2.List(apiCtx(t, ns, ""), &imagesapi.ListImagesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		listed[ns] = map[string]bool{}
		for _, img := range resp.Images {
			listed[ns][img.Name] = true
		}
	}
	for _, s := range succeeded {
		ctx := apiCtx(t, s.ns, "")
		if _, err := imgs2.Get(ctx, &imagesapi.GetImageRequest{Name: s.image}); err != nil {
			t.Errorf("image %s in %s, created before the kill, is lost: %v", s.image, s.ns, err)
		}
		if !listed[s.ns][s.image] {
			t.Errorf("image %s in %s is not listed after the restart", s.image, s.ns)
		}
		if _, err := cs2.Info(ctx, &contentapi.InfoRequest{Digest: s.blob}); err != nil {
			t.Errorf("blob %s in %s, committed before the kill, is lost: %v", s.blob, s.ns, err)
		}
	}
}

// writeSmallBlob writes data in one message and commits it as dgst.
func writeSmallBlob(ctx context.Context, cs contentapi.ContentClient, ref string, data []byte, dgst string) error {
	stream, err := cs.Write(ctx)
	if err != nil {
		return err
	}
	defer stream.CloseSend()
	err = stream.Send(&contentapi.WriteContentRequest{
		Action: contentapi.WriteAction_COMMIT, Ref: ref, Data: data,
		Total: int64(len(data)), Expected: dgst,
	})
	if err != nil {
		return err
	}
	_, err = stream.Recv()
	return err
}
