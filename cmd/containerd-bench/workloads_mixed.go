package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/images"
)

// The mixed workload is many clients of one daemon at once, each doing
// what a small tool does: store a blob, check it, name it, look around,
// clean up. Every client has a connection of its own (this project's Go
// client, the same for every daemon), and the clients share 4 namespaces,
// so that the daemon's locks, its database commits and its per-namespace
// indexes are contended both within and across namespaces.
var mixedWorkload = &workload{
	name: "mixed",
	about: fmt.Sprintf("%d clients (a connection each, this project's Go client) over %d namespaces, each looping: "+
		"write a unique %d KiB blob through the content writer and commit it, read it back and check it, "+
		"create an image of it with labels, list its namespace's images (must hold it), delete the image and the blob, "+
		"list namespaces; goal: at least 2.5x containerd 2.x's iterations/s (ours/2.x at most 0.40), 0 errors",
		mixedClients, mixedNamespaces, mixedBlobSize>>10),
	params: func(o options) string {
		return fmt.Sprintf("%v per daemon per round, median of %d rounds; an iteration is %d calls "+
			"(Write stream, Info, Read, Images Create, List, Delete, Content Delete, Namespaces List); "+
			"each client deletes its blobs, so no round leaves any for the next or for GC; errors are summed over rounds",
			o.mixedTime, o.rounds, mixedCallsPerIteration)
	},
	measure: measureMixed,
}

const (
	mixedClients           = 32
	mixedNamespaces        = 4
	mixedBlobSize          = 4 << 10
	mixedCallsPerIteration = 8
	// mixedErrorsShown is how many errors of a round are printed; the
	// rest are only counted.
	mixedErrorsShown = 3
)

// mixedRound numbers the rounds of the whole bench run, so that no name
// or blob of a round is one an earlier round may have left behind after
// an error.
var mixedRound atomic.Int64

// mixedClient is one of the workload's clients.
type mixedClient struct {
	c      *client.Client
	cs     content.Store
	is     images.Store
	ns     string
	prefix string // unique to the client and the round
	seq    int
	data   []byte // the blob being written, reused
}

func measureMixed(ctx context.Context, b *bench, d *daemon) ([]metric, error) {
	round := mixedRound.Add(1)
	clients := make([]*mixedClient, mixedClients)
	for i := range clients {
		ns := "mixed-" + strconv.Itoa(i%mixedNamespaces)
		c, err := client.New(d.address, client.WithDefaultNamespace(ns))
		if err != nil {
			return nil, err
		}
		defer c.Close()
		clients[i] = &mixedClient{
			c: c, cs: c.ContentStore(), is: c.ImageService(), ns: ns,
			prefix: fmt.Sprintf("r%d-c%02d", round, i),
			data:   make([]byte, mixedBlobSize),
		}
	}

	ctx, cancel := context.WithTimeoutCause(ctx, b.opts.mixedTime+hammerTimeout,
		fmt.Errorf("not done within %v", b.opts.mixedTime+hammerTimeout))
	defer cancel()

	var (
		mu        sync.Mutex
		failures  int
		shown     int
		warmFails int
	)
	fail := func(c *mixedClient, err error) {
		mu.Lock()
		defer mu.Unlock()
		failures++
		if shown < mixedErrorsShown {
			shown++
			fmt.Fprintf(os.Stderr, "containerd-bench: mixed: %s: client %s in %s: %v\n", d.flavor.label, c.prefix, c.ns, err)
		}
	}

	// A warm-up iteration each connects the clients and lets both sides
	// grow their buffers; only then does the clock start, for all at
	// once. Its errors count like the others.
	lats := make([][]time.Duration, len(clients))
	gate := make(chan struct{})
	var warmed, done sync.WaitGroup
	var t0 time.Time
	for i, c := range clients {
		warmed.Add(1)
		done.Go(func() {
			if err := c.iterate(ctx); err != nil {
				fail(c, err)
				mu.Lock()
				warmFails++
				mu.Unlock()
			}
			warmed.Done()
			select {
			case <-gate:
			case <-ctx.Done():
				return
			}
			own := make([]time.Duration, 0, 1024)
			for ctx.Err() == nil {
				t := time.Now()
				if t.Sub(t0) >= b.opts.mixedTime {
					break
				}
				if err := c.iterate(ctx); err != nil {
					if ctx.Err() == nil {
						fail(c, err)
					}
					continue
				}
				own = append(own, time.Since(t))
			}
			lats[i] = own
		})
	}
	warmed.Wait()
	if warmFails == len(clients) {
		cancel()
		done.Wait()
		return nil, errors.New("every client's first iteration failed: the workload does not work on this daemon")
	}
	t0 = time.Now()
	close(gate)
	done.Wait()
	elapsed := time.Since(t0)
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	all := slices.Concat(lats...)
	s := summarize(all)
	return []metric{
		rate("iterations/s", s.n, elapsed),
		rate("calls/s", s.n*mixedCallsPerIteration, elapsed),
		duration("iteration p50", s.p50),
		duration("iteration p99", s.p99),
		// Summed over the rounds: a median would hide errors that
		// happen in one round of three.
		{name: "errors", unit: count, value: float64(failures)},
	}, nil
}

// iterate makes one iteration of the workload: a new blob, written,
// checked, named by an image, listed, and removed again.
func (c *mixedClient) iterate(ctx context.Context) error {
	c.seq++
	name := fmt.Sprintf("mixed.example.com/%s/i%d:latest", c.prefix, c.seq)
	fillUnique(c.data, name)
	desc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageManifest,
		Digest:    digest.FromBytes(c.data),
		Size:      int64(len(c.data)),
	}
	// The blob is a GC root until the client deletes it: between its
	// commit and the image's creation nothing else refers to it, and the
	// daemons' GC may run at any time under this load.
	labels := map[string]string{"containerd.io/gc.root": time.Now().UTC().Format(time.RFC3339)}
	if err := content.WriteBlob(ctx, c.cs, name, bytes.NewReader(c.data), desc, content.WithLabels(labels)); err != nil {
		return fmt.Errorf("write blob: %w", err)
	}
	created, stored := false, true
	defer func() {
		// After an error, what the iteration made is removed all the
		// same, so that the round leaves nothing; these errors add
		// nothing to the count.
		if created {
			c.is.Delete(context.WithoutCancel(ctx), name)
		}
		if stored {
			c.cs.Delete(context.WithoutCancel(ctx), desc.Digest)
		}
	}()

	got, err := content.ReadBlob(ctx, c.cs, desc)
	if err != nil {
		return fmt.Errorf("read back %s: %w", desc.Digest, err)
	}
	if !bytes.Equal(got, c.data) {
		return fmt.Errorf("read back %s: %d bytes that differ from the %d written", desc.Digest, len(got), len(c.data))
	}
	if _, err := c.is.Create(ctx, images.Image{
		Name:   name,
		Labels: map[string]string{"bench": "mixed", "client": c.prefix},
		Target: desc,
	}); err != nil {
		return fmt.Errorf("create image %s: %w", name, err)
	}
	created = true
	imgs, err := c.is.List(ctx)
	if err != nil {
		return fmt.Errorf("list images: %w", err)
	}
	if !slices.ContainsFunc(imgs, func(i images.Image) bool { return i.Name == name }) {
		return fmt.Errorf("list images of %s: %d images, not the one just created (%s)", c.ns, len(imgs), name)
	}
	if err := c.is.Delete(ctx, name); err != nil {
		return fmt.Errorf("delete image %s: %w", name, err)
	}
	created = false
	if err := c.cs.Delete(ctx, desc.Digest); err != nil {
		return fmt.Errorf("delete blob %s: %w", desc.Digest, err)
	}
	stored = false
	nss, err := c.c.NamespaceService().List(ctx)
	if err != nil {
		return fmt.Errorf("list namespaces: %w", err)
	}
	if !slices.Contains(nss, c.ns) {
		return fmt.Errorf("list namespaces: %v, without %s", nss, c.ns)
	}
	return nil
}

// fillUnique fills p with bytes that depend on name, so that every
// iteration's blob is one no daemon has seen.
func fillUnique(p []byte, name string) {
	seed := uint64(len(name))
	for _, r := range name {
		seed = seed*1099511628211 ^ uint64(r)
	}
	for i := 0; i+8 <= len(p); i += 8 {
		seed = seed*6364136223846793005 + 1442695040888963407
		binary.LittleEndian.PutUint64(p[i:], seed)
	}
}
