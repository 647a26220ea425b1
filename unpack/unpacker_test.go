package unpack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/semaphore"

	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/diff/apply"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/snapshots"
	"github.com/llitfkitfk/containerd/snapshots/naive"
	"github.com/llitfkitfk/containerd/snapshots/overlay"
)

// backend is a snapshotter to unpack into, as the daemon would set it up.
type backend struct {
	name string
	new  func(t testing.TB) (snapshots.Snapshotter, []string)
}

var backends = []backend{
	{"naive", func(t testing.TB) (snapshots.Snapshotter, []string) {
		sn, err := naive.NewSnapshotter(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sn.Close() })
		return sn, nil
	}},
	{"overlayfs", newOverlay},
}

func newOverlay(t testing.TB) (snapshots.Snapshotter, []string) {
	root := t.TempDir()
	if err := overlay.Supported(root); err != nil {
		t.Skipf("overlay: %v", err)
	}
	sn, err := overlay.NewSnapshotter(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	return sn, []string{CapRebase}
}

func platformFor(name string, sn snapshots.Snapshotter, caps []string, a *countingApplier) Platform {
	return Platform{
		Platform:                platforms.Only(platforms.DefaultSpec()),
		SnapshotterKey:          name,
		Snapshotter:             sn,
		Applier:                 a,
		SnapshotterCapabilities: caps,
	}
}

// progressLog collects progress events by layer.
type progressLog struct {
	mu     sync.Mutex
	events map[string][]string
}

func (p *progressLog) add(e Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.events == nil {
		p.events = map[string][]string{}
	}
	evs := p.events[e.Layer]
	if len(evs) == 0 || evs[len(evs)-1] != e.Event {
		p.events[e.Layer] = append(evs, e.Event)
	}
}

// pull runs the handler chain the transfer service builds around h.
func pull(cs content.Store, img testImage, p Platform, f *fetcher, limit int64, opts ...UnpackerOpt) (Result, error) {
	ctx := context.Background()
	opts = append([]UnpackerOpt{WithUnpackPlatform(p), WithLimiter(semaphore.NewWeighted(limit))}, opts...)
	u, err := NewUnpacker(ctx, cs, opts...)
	if err != nil {
		return Result{}, err
	}
	h := u.Unpack(images.Handlers(f, images.ChildrenHandler(cs)))
	if err := images.Dispatch(ctx, h, nil, img.manifest); err != nil {
		u.Wait()
		return Result{}, err
	}
	return u.Wait()
}

// readTree returns the files of the committed snapshot name: path to
// content, "/" for directories.
func readTree(t *testing.T, sn snapshots.Snapshotter, name string) map[string]string {
	t.Helper()
	ctx := context.Background()
	key := "view-" + name
	mounts, err := sn.View(ctx, key, name)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Remove(ctx, key)
	got := map[string]string{}
	read := func(root string) error {
		return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || path == root {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			if d.IsDir() {
				got[rel] = "/"
				return nil
			}
			if !d.Type().IsRegular() {
				got[rel] = "?" + d.Type().String() // a whiteout left visible
				return nil
			}
			b, err := os.ReadFile(path)
			got[rel] = string(b)
			return err
		})
	}
	if len(mounts) == 1 && mounts[0].Type == "bind" {
		err = read(mounts[0].Source)
	} else {
		err = mount.WithTempMount(ctx, mounts, read)
	}
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func checkTree(t *testing.T, got map[string]string) {
	t.Helper()
	for p, want := range wantFiles {
		if g, ok := got[p]; !ok {
			t.Errorf("%s missing", p)
		} else if g != want {
			t.Errorf("%s = %.20q, want %.20q", p, g, want)
		}
	}
	for p := range got {
		if _, ok := wantFiles[p]; !ok {
			t.Errorf("unexpected %s (%.20q)", p, got[p])
		}
	}
}

func shuffled(img testImage) []digest.Digest {
	// A fixed shuffle: the top layer first, the bottom last.
	return []digest.Digest{img.layers[2].Digest, img.layers[3].Digest, img.layers[0].Digest, img.layers[1].Digest}
}

// TestUnpack unpacks an image whose layers arrive out of order, and checks
// the chain, its labels, the files, and that a second unpack finds it all
// there.
func TestUnpack(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			sn, caps := b.new(t)
			cs := newStore(t)
			img := buildImage(t, cs, testLayers(), -1)
			a := &countingApplier{Applier: apply.NewFileSystemApplier(cs)}
			var prog progressLog
			res, err := pull(cs, img, platformFor(b.name, sn, caps, a), newFetcher(shuffled(img)), 4, WithProgress(prog.add))
			if err != nil {
				t.Fatal(err)
			}
			if res.Unpacks != 1 {
				t.Errorf("Unpacks = %d, want 1", res.Unpacks)
			}
			chain := chainOf(img.diffIDs)
			all := snapshotsOf(t, sn)
			if len(all) != len(chain) {
				t.Errorf("snapshots: %s; want the %d of the chain only", describe(all), len(chain))
			}
			for i, c := range chain {
				info, ok := all[c]
				if !ok {
					t.Errorf("chain ID %s of layer %d not committed", c, i)
					continue
				}
				parent := ""
				if i > 0 {
					parent = chain[i-1]
				}
				if info.Kind != snapshots.KindCommitted || info.Parent != parent {
					t.Errorf("layer %d: %s with parent %q, want committed with %q", i, info.Kind, info.Parent, parent)
				}
				want := map[string]string{
					snapshots.LabelSnapshotRef:       c,
					"containerd.io/snapshot/diff-id": img.diffIDs[i].String(),
				}
				if parent != "" {
					want["containerd.io/snapshot/parent-chain-id"] = parent
				}
				for k, v := range want {
					if info.Labels[k] != v {
						t.Errorf("layer %d: label %s = %q, want %q", i, k, info.Labels[k], v)
					}
				}
				blob, err := cs.Info(context.Background(), img.layers[i].Digest)
				if err != nil {
					t.Fatal(err)
				}
				if got := blob.Labels["containerd.io/uncompressed"]; got != img.diffIDs[i].String() {
					t.Errorf("layer %d blob: uncompressed label %q, want %s", i, got, img.diffIDs[i])
				}
				if evs := prog.events[img.layers[i].Digest.String()]; !slices.Equal(evs, []string{EventUnpacking, EventUnpacked}) {
					t.Errorf("layer %d progress: %v", i, evs)
				}
			}
			cfg, err := cs.Info(context.Background(), img.config.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Labels["containerd.io/gc.ref.snapshot."+b.name]; got != chain[len(chain)-1] {
				t.Errorf("config gc label = %q, want %s", got, chain[len(chain)-1])
			}
			checkTree(t, readTree(t, sn, chain[len(chain)-1]))

			// Again: everything is there, nothing is applied. The
			// layers' fetches start before the config says so, and are
			// then cancelled, not waited for: here they would never end.
			f := newFetcher(nil)
			f.hang = true
			var again progressLog
			if _, err := pull(cs, img, platformFor(b.name, sn, caps, a), f, 4, WithProgress(again.add)); err != nil {
				t.Fatal(err)
			}
			if calls, _ := a.stats(); calls != len(chain) {
				t.Errorf("second unpack applied layers: %d applies in all, want %d", calls, len(chain))
			}
			f.mu.Lock()
			// Every fetch that started, not only those that ran at once
			// (maxIn): a fetch cancelled early may free its slot for
			// another before that one is counted.
			started := 0
			for _, n := range f.fetched {
				started += n
			}
			if f.cancelled != started || f.inflight != 0 {
				t.Errorf("second unpack: %d fetches cancelled, %d still running; want all %d started cancelled", f.cancelled, f.inflight, started)
			}
			f.mu.Unlock()
			for i, l := range img.layers {
				if evs := again.events[l.Digest.String()]; !slices.Equal(evs, []string{EventAlreadyExists}) {
					t.Errorf("second unpack, layer %d progress: %v", i, evs)
				}
			}
		})
	}
}

// TestParallelApply checks that on overlay layers are applied as they
// arrive, top first if the top comes first, and several at once.
func TestParallelApply(t *testing.T) {
	sn, caps := newOverlay(t)
	cs := newStore(t)
	img := buildImage(t, cs, testLayers(), -1)

	order := slices.Clone(img.layers)
	slices.Reverse(order)
	var digests []digest.Digest
	started := map[digest.Digest]chan struct{}{}
	for _, l := range order {
		digests = append(digests, l.Digest)
		started[l.Digest] = make(chan struct{})
	}
	var once sync.Map
	a := &countingApplier{
		Applier: apply.NewFileSystemApplier(cs),
		waitFor: 2,
		started: func(d digest.Digest) {
			if _, loaded := once.LoadOrStore(d, true); !loaded {
				close(started[d])
			}
		},
	}
	f := newFetcher(digests)
	var notAsFetched sync.Map
	// Each layer's fetch ends only once the layer fetched before it is
	// being applied: an unpacker that waited for the layers below would
	// never get there.
	f.waitTurn = func(d digest.Digest) {
		i := slices.Index(digests, d)
		if i == 0 {
			return
		}
		select {
		case <-started[digests[i-1]]:
		case <-time.After(20 * time.Second):
			notAsFetched.Store(digests[i-1], true)
		}
	}
	if _, err := pull(cs, img, platformFor("overlayfs", sn, caps, a), f, 4); err != nil {
		t.Fatal(err)
	}
	notAsFetched.Range(func(k, _ any) bool {
		t.Errorf("layer %s was not applied once fetched", k)
		return true
	})
	if _, maxIn := a.stats(); maxIn < 2 {
		t.Errorf("at most %d layers applied at once, want >= 2", maxIn)
	}
	chain := chainOf(img.diffIDs)
	checkTree(t, readTree(t, sn, chain[len(chain)-1]))
}

// TestLimiter checks that no more layers are fetched at once than the
// limiter allows.
func TestLimiter(t *testing.T) {
	sn, _ := backends[0].new(t)
	cs := newStore(t)
	img := buildImage(t, cs, testLayers(), -1)
	f := newFetcher(nil)
	f.waitTurn = func(digest.Digest) {
		// Long enough for the others to pile up if they could; the
		// assertion does not depend on it.
		time.Sleep(20 * time.Millisecond)
	}
	a := &countingApplier{Applier: apply.NewFileSystemApplier(cs)}
	if _, err := pull(cs, img, platformFor("naive", sn, nil, a), f, 2); err != nil {
		t.Fatal(err)
	}
	if f.maxIn > 2 {
		t.Errorf("%d layers fetched at once with a limit of 2", f.maxIn)
	}
	for i, l := range img.layers {
		if f.count(l.Digest) != 1 {
			t.Errorf("layer %d fetched %d times", i, f.count(l.Digest))
		}
	}
}

// TestCorruptLayer unpacks an image whose config names a wrong diff ID for
// one layer: the unpack fails naming it, leaves no snapshot behind, and
// the right image then unpacks.
func TestCorruptLayer(t *testing.T) {
	for _, b := range backends {
		for _, bad := range []int{0, 2} {
			t.Run(b.name, func(t *testing.T) {
				sn, caps := b.new(t)
				cs := newStore(t)
				corrupt := buildImage(t, cs, testLayers(), bad)
				a := &countingApplier{Applier: apply.NewFileSystemApplier(cs)}
				_, err := pull(cs, corrupt, platformFor(b.name, sn, caps, a), newFetcher(shuffled(corrupt)), 4)
				if err == nil {
					t.Fatal("unpack of a corrupt layer succeeded")
				}
				if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), corrupt.layers[bad].Digest.String()) {
					t.Errorf("error %q: want FailedPrecondition naming layer %s", err, corrupt.layers[bad].Digest)
				}
				if all := snapshotsOf(t, sn); len(all) != 0 {
					t.Errorf("left behind: %s", describe(all))
				}
				cfg, _ := cs.Info(context.Background(), corrupt.config.Digest)
				if v, ok := cfg.Labels["containerd.io/gc.ref.snapshot."+b.name]; ok {
					t.Errorf("corrupt image's config labelled with snapshot %s", v)
				}

				good := buildImage(t, cs, testLayers(), -1)
				// No fetch order here: a wrongly kept layer would not be
				// fetched, and the test hang waiting for it.
				if _, err := pull(cs, good, platformFor(b.name, sn, caps, a), newFetcher(nil), 4); err != nil {
					t.Fatalf("retry: %v", err)
				}
				chain := chainOf(good.diffIDs)
				checkTree(t, readTree(t, sn, chain[len(chain)-1]))
				if all := snapshotsOf(t, sn); len(all) != len(chain) {
					t.Errorf("after retry: %s", describe(all))
				}
			})
		}
	}
}

// TestFetchError checks that a layer that cannot be fetched fails the
// unpack, with nothing left behind.
func TestFetchError(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			sn, caps := b.new(t)
			cs := newStore(t)
			img := buildImage(t, cs, testLayers(), -1)
			boom := errors.New("registry went away")
			h := images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
				if desc.Digest == img.layers[2].Digest {
					return nil, boom
				}
				return nil, nil
			})
			a := &countingApplier{Applier: apply.NewFileSystemApplier(cs)}
			u, err := NewUnpacker(context.Background(), cs, WithUnpackPlatform(platformFor(b.name, sn, caps, a)))
			if err != nil {
				t.Fatal(err)
			}
			wrapped := u.Unpack(images.Handlers(h, images.ChildrenHandler(cs)))
			if err := images.Dispatch(context.Background(), wrapped, nil, img.manifest); err != nil {
				t.Fatal(err)
			}
			if _, err := u.Wait(); !errors.Is(err, boom) {
				t.Fatalf("Wait: %v, want %v", err, boom)
			}
			if all := snapshotsOf(t, sn); len(all) != 0 {
				t.Errorf("left behind: %s", describe(all))
			}
		})
	}
}

// TestOtherPlatform checks that an image of a platform not unpacked is
// only fetched.
func TestOtherPlatform(t *testing.T) {
	sn, _ := backends[0].new(t)
	cs := newStore(t)
	img := buildImage(t, cs, testLayers(), -1)
	p := platformFor("naive", sn, nil, &countingApplier{Applier: apply.NewFileSystemApplier(cs)})
	p.Platform = platforms.Only(ocispec.Platform{OS: "plan9", Architecture: "mips"})
	f := newFetcher(nil)
	res, err := pull(cs, img, p, f, 3)
	if err != nil {
		t.Fatal(err)
	}
	if res.Unpacks != 0 {
		t.Errorf("Unpacks = %d, want 0", res.Unpacks)
	}
	for i, l := range img.layers {
		if f.count(l.Digest) != 1 {
			t.Errorf("layer %d fetched %d times, want once", i, f.count(l.Digest))
		}
	}
	if all := snapshotsOf(t, sn); len(all) != 0 {
		t.Errorf("snapshots made: %s", describe(all))
	}
}

func TestChainIDs(t *testing.T) {
	ids := []digest.Digest{digest.FromString("a"), digest.FromString("b"), digest.FromString("c")}
	got := chainIDs(ids)
	want := chainOf(ids)
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("chain ID %d = %s, want %s", i, got[i], want[i])
		}
	}
}

// noRebase drops the parent a Commit is given, as a metadata layer that
// does not know about rebasing would.
type noRebase struct {
	snapshots.Snapshotter
}

func (s noRebase) Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error {
	var info snapshots.Info
	for _, o := range opts {
		if err := o(&info); err != nil {
			return err
		}
	}
	return s.Snapshotter.Commit(ctx, name, key, snapshots.WithLabels(info.Labels))
}

// TestRebaseDropped checks that a snapshotter claiming CapRebase whose
// commits do not rebase is caught, and the image unpacked in order.
func TestRebaseDropped(t *testing.T) {
	sn, caps := newOverlay(t)
	cs := newStore(t)
	img := buildImage(t, cs, testLayers(), -1)
	a := &countingApplier{Applier: apply.NewFileSystemApplier(cs)}
	if _, err := pull(cs, img, platformFor("overlayfs", noRebase{sn}, caps, a), newFetcher(nil), 4); err != nil {
		t.Fatal(err)
	}
	chain := chainOf(img.diffIDs)
	all := snapshotsOf(t, sn)
	if len(all) != len(chain) {
		t.Errorf("snapshots: %s", describe(all))
	}
	for i := 1; i < len(chain); i++ {
		if all[chain[i]].Parent != chain[i-1] {
			t.Errorf("layer %d: parent %q, want %s", i, all[chain[i]].Parent, chain[i-1])
		}
	}
	checkTree(t, readTree(t, sn, chain[len(chain)-1]))
}

// TestSharedBlob unpacks an image that names one blob twice: it is
// fetched once and applied at both places.
func TestSharedBlob(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			sn, caps := b.new(t)
			cs := newStore(t)
			empty := testLayer{entries: nil}
			layers := append(testLayers()[:2], empty, testLayers()[2], empty, testLayers()[3])
			img := buildImage(t, cs, layers, -1)
			if img.layers[2].Digest != img.layers[4].Digest {
				t.Fatal("the two empty layers differ")
			}
			f := newFetcher(nil)
			a := &countingApplier{Applier: apply.NewFileSystemApplier(cs)}
			if _, err := pull(cs, img, platformFor(b.name, sn, caps, a), f, 4); err != nil {
				t.Fatal(err)
			}
			if n := f.count(img.layers[2].Digest); n != 1 {
				t.Errorf("shared blob fetched %d times", n)
			}
			chain := chainOf(img.diffIDs)
			if all := snapshotsOf(t, sn); len(all) != len(chain) {
				t.Errorf("snapshots: %s", describe(all))
			}
			checkTree(t, readTree(t, sn, chain[len(chain)-1]))
		})
	}
}

// TestBadConfig checks that configs that do not match their manifest, or
// name malformed diff IDs, fail the unpack before anything is made.
func TestBadConfig(t *testing.T) {
	for name, rootfs := range map[string]string{
		"too few diff IDs":    `{"type":"layers","diff_ids":["%s"]}`,
		"malformed diff ID":   `{"type":"layers","diff_ids":["%s","sha256:../../etc"]}`,
		"not a layers rootfs": `{"type":"zfs","diff_ids":["%s"]}`,
	} {
		t.Run(name, func(t *testing.T) {
			sn, _ := backends[0].new(t)
			cs := newStore(t)
			img := buildImage(t, cs, testLayers()[:2], -1)
			pl := platforms.DefaultSpec()
			cfg := fmt.Sprintf(`{"os":%q,"architecture":%q,"rootfs":`+rootfs+`}`, pl.OS, pl.Architecture, img.diffIDs[0])
			img.config = writeBlob(t, cs, ocispec.MediaTypeImageConfig, []byte(cfg))
			m, _ := json.Marshal(ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: img.config, Layers: img.layers})
			img.manifest = writeBlob(t, cs, ocispec.MediaTypeImageManifest, m)
			a := &countingApplier{Applier: apply.NewFileSystemApplier(cs)}
			_, err := pull(cs, img, platformFor("naive", sn, nil, a), newFetcher(nil), 3)
			if err == nil {
				t.Fatal("unpack succeeded")
			}
			if !errdefs.IsInvalidArgument(err) && !errdefs.IsNotImplemented(err) {
				t.Errorf("error %v: want InvalidArgument or NotImplemented", err)
			}
			if all := snapshotsOf(t, sn); len(all) != 0 {
				t.Errorf("snapshots made: %s", describe(all))
			}
		})
	}
}

// TestSharedConfig unpacks an index of two manifests with one config (the
// same layers, compressed differently): one chain is unpacked, and every
// layer of both is fetched.
func TestSharedConfig(t *testing.T) {
	sn, _ := backends[0].new(t)
	cs := newStore(t)
	plain := testLayers()
	for i := range plain {
		plain[i].gzip = false
	}
	a := buildImage(t, cs, testLayers(), -1)
	b := buildImage(t, cs, plain, -1)
	if a.config.Digest != b.config.Digest {
		t.Fatal("the variants' configs differ")
	}
	idx, _ := json.Marshal(ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{a.manifest, b.manifest}})
	root := testImage{manifest: writeBlob(t, cs, ocispec.MediaTypeImageIndex, idx)}
	f := newFetcher(nil)
	ap := &countingApplier{Applier: apply.NewFileSystemApplier(cs)}
	res, err := pull(cs, root, platformFor("naive", sn, nil, ap), f, 3)
	if err != nil {
		t.Fatal(err)
	}
	if res.Unpacks != 1 {
		t.Errorf("Unpacks = %d, want 1", res.Unpacks)
	}
	// Once per manifest that lists it: layer 1 is uncompressed in both.
	want := map[digest.Digest]int{}
	for _, l := range append(a.layers, b.layers...) {
		want[l.Digest]++
	}
	for d, w := range want {
		if n := f.count(d); n != w {
			t.Errorf("layer %s fetched %d times, want %d", d, n, w)
		}
	}
	if calls, _ := ap.stats(); calls != len(a.layers) {
		t.Errorf("%d layers applied, want %d", calls, len(a.layers))
	}
	chain := chainOf(a.diffIDs)
	checkTree(t, readTree(t, sn, chain[len(chain)-1]))
}
