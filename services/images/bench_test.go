package images

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	api "github.com/llitfkitfk/containerd/api/services/images/v1"
	"github.com/llitfkitfk/containerd/internal/testutil"
	"github.com/llitfkitfk/containerd/metadata"
	"github.com/llitfkitfk/containerd/namespaces"
)

// BenchmarkList lists 500 labelled images over a real gRPC connection,
// as containerd-bench's images workload does, client decoding included.
func BenchmarkList(b *testing.B) {
	db, err := metadata.Open(context.Background(), filepath.Join(b.TempDir(), "meta.db"), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	svc := &service{local: NewLocal(metadata.NewImageStore(db), &testutil.Publisher{})}
	c := api.NewImagesClient(testutil.Serve(b, svc.Register))
	ctx := namespaces.WithNamespace(context.Background(), "bench")
	for i := range 500 {
		_, err := c.Create(ctx, &api.CreateImageRequest{Image: &api.Image{
			Name:   fmt.Sprintf("registry.example.com/bench/image-%04d:latest", i),
			Labels: map[string]string{"team": "bench", "index": fmt.Sprint(i)},
			Target: target,
		}})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		resp, err := c.List(ctx, &api.ListImagesRequest{})
		if err != nil || len(resp.Images) != 500 {
			b.Fatalf("listed %d: %v", len(resp.GetImages()), err)
		}
	}
}
