package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	imagesapi "github.com/llitfkitfk/containerd/api/services/images/v1"
	"github.com/llitfkitfk/containerd/api/types"
)

// imageCount images are listed; a host with a few hundred images is
// ordinary.
const (
	imageCount = 500
	listCalls  = 100
)

var imageListWorkload = &workload{
	name: "images",
	about: fmt.Sprintf("Images.List of %d images with labels, %d calls in a row; goal: at most 0.3 of containerd 2.x's time (ours/2.x of p50 at most 0.30)",
		imageCount, listCalls),
	params: func(o options) string {
		return fmt.Sprintf("median of %d rounds", o.rounds)
	},
	measure: measureImageList,
}

func measureImageList(ctx context.Context, b *bench, d *daemon) ([]metric, error) {
	conn, err := d.dial()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx = benchNamespace(ctx)
	client := imagesapi.NewImagesClient(conn)

	have, err := client.List(ctx, &imagesapi.ListImagesRequest{})
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	// The images are made once per daemon; later rounds reuse them.
	for i := len(have.Images); i < imageCount; i++ {
		name := fmt.Sprintf("registry.example.com/bench/image-%04d:latest", i)
		_, err := client.Create(ctx, &imagesapi.CreateImageRequest{Image: &imagesapi.Image{
			Name:   name,
			Labels: map[string]string{"team": "bench", "index": fmt.Sprint(i)},
			Target: &types.Descriptor{
				MediaType: "application/vnd.oci.image.manifest.v1+json",
				Digest:    fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(name))),
				Size:      1234,
			},
		}})
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", name, err)
		}
	}

	lat := make([]time.Duration, 0, listCalls)
	start := time.Now()
	for range listCalls {
		t := time.Now()
		resp, err := client.List(ctx, &imagesapi.ListImagesRequest{})
		if err != nil {
			return nil, fmt.Errorf("list: %w", err)
		}
		lat = append(lat, time.Since(t))
		if len(resp.Images) != imageCount {
			return nil, fmt.Errorf("listed %d images, want %d", len(resp.Images), imageCount)
		}
	}
	elapsed := time.Since(start)
	s := summarize(lat)
	return []metric{
		rate("lists/s", listCalls, elapsed),
		duration("p50", s.p50),
		duration("p99", s.p99),
	}, nil
}
