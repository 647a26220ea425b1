package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"

	eventsapi "github.com/llitfkitfk/containerd/api/services/events/v1"
	imagesapi "github.com/llitfkitfk/containerd/api/services/images/v1"
	versionapi "github.com/llitfkitfk/containerd/api/services/version/v1"
	"github.com/llitfkitfk/containerd/api/types"
)

// The rss workload measures what a daemon keeps resident after ordinary
// work, and whether two kinds of abuse leave it bigger: many connections
// at once, and a subscriber that stops reading its events. Each round has
// a new daemon, so that every figure is from the same history.
var rssWorkload = &workload{
	name: "rss",
	about: fmt.Sprintf("a fresh daemon's VmRSS after run-and-import (ctr images import of a busybox image, %d ctr run --rm of `true` "+
		"through its own shim and runc, %v idle), then after a storm of %d connections each making a Version call, "+
		"then after an event subscriber that stops reading while %d events (image creates and deletes) are published, then is dropped; "+
		"growth is against the settled RSS; goal: settled RSS under 30 MB (28.6 MiB) and at most 0.55 of containerd 2.x's, no growth",
		rssRuns, rssSettle, rssConns, rssEvents),
	params: func(o options) string {
		return fmt.Sprintf("median of %d rounds, a new daemon each", o.rounds)
	},
	fresh:   true,
	measure: measureRSS,
}

const (
	rssRuns = 5
	// rssSettle is how long a daemon is left idle before its RSS is
	// read: long enough for the work's goroutines and buffers to be let
	// go, as short as a bench allows. (A Go daemon's heap garbage waits
	// for the next GC, and freed pages for the scavenger, so part of what
	// a burst leaves may show here and be gone minutes later; a daemon
	// that wants to look lean after a burst has to give it back itself.)
	rssSettle = 3 * time.Second
	rssConns  = 2000
	// rssEvents are published while the subscriber stalls: half image
	// creates, half deletes.
	rssEvents = 5000
	// rssParallel bounds the calls under way at once while the
	// connections are made and the events published.
	rssParallel = 32
)

func measureRSS(ctx context.Context, b *bench, d *daemon) ([]metric, error) {
	if !privateRun {
		return nil, errors.New("running containers needs root, for a private /run")
	}
	archive, err := b.busyboxArchive()
	if err != nil {
		return nil, err
	}
	if _, err := d.ctr(ctx, "images", "import", "--snapshotter", "overlayfs", archive); err != nil {
		return nil, err
	}
	for i := range rssRuns {
		if _, err := d.ctr(ctx, "run", "--rm", "--snapshotter", "overlayfs", runImageName, fmt.Sprintf("rss-%d", i), "true"); err != nil {
			return nil, err
		}
	}
	pid := d.cmd.Process.Pid
	settle := func() (float64, error) {
		select {
		case <-time.After(rssSettle):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		return residentBytes(pid)
	}
	settled, err := settle()
	if err != nil {
		return nil, err
	}

	if err := connectionStorm(ctx, d); err != nil {
		return nil, fmt.Errorf("connection storm: %w", err)
	}
	afterStorm, err := settle()
	if err != nil {
		return nil, err
	}

	stalled, err := stalledSubscriber(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("stalled subscriber: %w", err)
	}
	afterSub, err := settle()
	if err != nil {
		return nil, err
	}
	return []metric{
		{name: "RSS settled after run-and-import", unit: bytesSize, value: settled},
		{name: fmt.Sprintf("RSS after %d-connection storm", rssConns), unit: bytesSize, value: afterStorm},
		{name: "growth after storm", unit: bytesDelta, value: afterStorm - settled},
		{name: fmt.Sprintf("RSS while a subscriber stalls (%d events)", rssEvents), unit: bytesSize, value: stalled},
		{name: "RSS after it is dropped", unit: bytesSize, value: afterSub},
		{name: "growth after storm and subscriber", unit: bytesDelta, value: afterSub - settled},
	}, nil
}

// connectionStorm opens rssConns connections to d, each making one
// Version call, holds them all open at once, then closes them all.
func connectionStorm(ctx context.Context, d *daemon) error {
	ctx, cancel := context.WithTimeoutCause(ctx, hammerTimeout, fmt.Errorf("not done within %v", hammerTimeout))
	defer cancel()
	conns := make([]*grpc.ClientConn, rssConns)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, rssParallel)
	for i := range conns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			conn, err := d.dial()
			if err == nil {
				conns[i] = conn
				_, err = versionapi.NewVersionClient(conn).Version(ctx, &emptypb.Empty{})
			}
			if err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("connection %d: %w", i+1, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// stalledSubscriber subscribes to d's events, reads the first and no
// more while rssEvents events are published, reads the daemon's RSS, and
// drops the subscription. The subscriber's connection keeps gRPC's
// initial flow-control windows (64 KiB), which also turns off their
// growth, so that the daemon, not the subscriber's buffers, holds what
// is not read after the first few hundred events.
func stalledSubscriber(ctx context.Context, d *daemon) (float64, error) {
	// A daemon that blocked its publishers behind the stalled subscriber
	// would hang the bench: that is an error here.
	ctx, cancel := context.WithTimeoutCause(ctx, hammerTimeout, fmt.Errorf("not done within %v", hammerTimeout))
	defer cancel()
	subConn, err := grpc.NewClient("unix://"+d.address, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		return 0, err
	}
	defer subConn.Close()
	conn, err := d.dial()
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ctx = benchNamespace(ctx)
	subCtx, unsubscribe := context.WithCancel(ctx)
	defer unsubscribe()
	stream, err := eventsapi.NewEventsClient(subConn).Subscribe(subCtx, &eventsapi.SubscribeRequest{})
	if err != nil {
		return 0, fmt.Errorf("subscribe: %w", err)
	}
	imgs := imagesapi.NewImagesClient(conn)
	image := func(i int) *imagesapi.Image {
		name := fmt.Sprintf("rss.example.com/events/image-%05d:latest", i)
		return &imagesapi.Image{
			Name:   name,
			Labels: map[string]string{"bench": "rss"},
			Target: &types.Descriptor{
				MediaType: "application/vnd.oci.image.manifest.v1+json",
				Digest:    fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(name))),
				Size:      1234,
			},
		}
	}
	// The first event read says the subscription is in place.
	if _, err := imgs.Create(ctx, &imagesapi.CreateImageRequest{Image: image(-1)}); err != nil {
		return 0, fmt.Errorf("create image: %w", err)
	}
	if _, err := stream.Recv(); err != nil {
		return 0, fmt.Errorf("first event: %w", err)
	}

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, rssParallel)
	for i := range rssEvents / 2 {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			img := image(i)
			_, err := imgs.Create(ctx, &imagesapi.CreateImageRequest{Image: img})
			if err == nil {
				_, err = imgs.Delete(ctx, &imagesapi.DeleteImageRequest{Name: img.Name})
			}
			if err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("image %d: %w", i, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("%w (%w)", first, context.Cause(ctx))
		}
		return 0, first
	}
	select {
	case <-time.After(rssSettle):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return residentBytes(d.cmd.Process.Pid)
}
