package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/llitfkitfk/containerd/internal/testimage"
	"github.com/llitfkitfk/containerd/internal/testutil"
)

// The transfer workloads time what containerd 2.x's ctr does through a
// daemon's transfer service, without --local: pulling and unpacking an
// image of several layers, about 100 MB compressed, from a registry on
// loopback (Debian's docker-registry, started here), and importing the
// same image from an archive. Only containerd 2.x has a transfer service,
// so these compare ours with containerd 2.x's daemon: -theirs, or
// -containerd2 if given. Each measurement runs on a new daemon on a new
// filesystem (see workload.freshFS): unpacking writes the image's files,
// and the disk's history would otherwise decide who is faster.
//
// A failure of ours is reported and its column left empty, so that the
// workload still shows containerd's times (and works unchanged once our
// transfer service pulls); a failure of containerd's is an error.

var (
	containerd2Path = flag.String("containerd2", "",
		"containerd 2.x's daemon, which the pull and import workloads compare with (default: -theirs)")
	ctr2Path = flag.String("ctr2", "bin/containerd2/ctr",
		"containerd 2.x's ctr, which drives the pull and import workloads through each daemon's transfer service")
)

func init() {
	workloads = append(workloads, pullWorkload, importWorkload)
}

const (
	transferRepo      = "bench/transfer"
	transferTag       = "latest"
	transferLayers    = 5
	transferLayerSize = 20 << 20 // random bytes per layer: gzip keeps them
	transferSmall     = 200      // small text files per layer
	// transferTimeout bounds one pull or import.
	transferTimeout = 10 * time.Minute
)

var pullWorkload = &workload{
	name:  "pull",
	about: fmt.Sprintf("ctr 2.x images pull --plain-http of a %d-layer, ~%d MB compressed image from a loopback registry, unpacked; theirs is containerd 2.x", transferLayers, transferLayers*transferLayerSize>>20),
	params: func(o options) string {
		return fmt.Sprintf("median of %d rounds, each daemon on a fresh filesystem", o.rounds)
	},
	compare: func(ctx context.Context, b *bench) (*table, error) {
		reg, ref, err := b.transferRegistry()
		if err != nil {
			return nil, err
		}
		defer reg.Close()
		return b.compareTransfer(ctx, "pull+unpack", func(ctx context.Context, d *daemon) error {
			_, err := ctr2(ctx, d.address, "images", "pull", "--plain-http", ref)
			return err
		})
	},
}

var importWorkload = &workload{
	name:  "import",
	about: "ctr 2.x images import (no --local) of the pull workload's image, exported by ctr, unpacked; theirs is containerd 2.x",
	params: func(o options) string {
		return fmt.Sprintf("median of %d rounds, each daemon on a fresh filesystem", o.rounds)
	},
	compare: func(ctx context.Context, b *bench) (*table, error) {
		archive, err := b.transferArchive(ctx)
		if err != nil {
			return nil, err
		}
		return b.compareTransfer(ctx, "import+unpack", func(ctx context.Context, d *daemon) error {
			_, err := ctr2(ctx, d.address, "images", "import", archive)
			return err
		})
	},
}

// compareTransfer times op on ours and on containerd 2.x, alternating who
// goes first, each time on new daemons on new filesystems.
func (b *bench) compareTransfer(ctx context.Context, name string, op func(context.Context, *daemon) error) (*table, error) {
	theirs, err := b.containerd2Flavor()
	if err != nil {
		return nil, err
	}
	times := map[*flavor][]time.Duration{}
	var oursErr error
	for i := range b.opts.rounds {
		for _, f := range b.order(i) {
			if f == b.theirs {
				f = theirs
			}
			d, err := b.startOnFreshFS(ctx, f, "")
			if err != nil {
				return nil, err
			}
			if f == theirs {
				f.label = versionLabel(d.version, f.label)
			}
			opCtx, cancel := context.WithTimeout(ctx, transferTimeout)
			start := time.Now()
			err = op(opCtx, d)
			elapsed := time.Since(start)
			cancel()
			if err != nil && ctx.Err() == nil && f != b.ours {
				err = fmt.Errorf("%w\n--- end of the daemon's log ---\n%s", err, d.tail())
			}
			if serr := d.stop(); err == nil {
				err = serr
			}
			switch {
			case ctx.Err() != nil:
				return nil, ctx.Err()
			case err != nil && f == b.ours:
				if oursErr == nil {
					oursErr = err
					fmt.Fprintf(os.Stderr, "containerd-bench: %s: ours failed, its column stays empty: %v\n", name, err)
				}
			case err != nil:
				return nil, fmt.Errorf("containerd 2.x, round %d: %w", i+1, err)
			default:
				times[f] = append(times[f], elapsed)
			}
		}
	}
	p50 := func(ds []time.Duration) float64 {
		if len(ds) == 0 {
			return math.NaN()
		}
		return summarize(ds).p50.Seconds()
	}
	what := name + " p50"
	if oursErr != nil {
		what += " (ours failed)"
	}
	return tabulate(map[*flavor][]metric{
		b.ours: {{name: what, unit: seconds, value: p50(times[b.ours])}},
		theirs: {{name: what, unit: seconds, value: p50(times[theirs])}},
	}, b.ours, theirs)
}

// containerd2Flavor is containerd 2.x's daemon as the other side of the
// transfer workloads, with its own shim.
func (b *bench) containerd2Flavor() (*flavor, error) {
	transfer.once2.Do(func() {
		if *containerd2Path == "" {
			transfer.containerd2 = b.theirs
			return
		}
		path, err := filepath.Abs(*containerd2Path)
		if err == nil {
			_, err = os.Stat(path)
		}
		if err != nil {
			transfer.err2 = fmt.Errorf("-containerd2: %w (script/containerd2.sh builds it; `make test-deps` runs it)", err)
			return
		}
		shim, err := resolveShim("", path)
		if err != nil {
			shim = ""
		}
		transfer.containerd2 = &flavor{name: "containerd2", label: "containerd2", path: path, containerd: true, shim: shim}
	})
	return transfer.containerd2, transfer.err2
}

// transfer is what the transfer workloads build once per run.
var transfer struct {
	once2       sync.Once
	containerd2 *flavor
	err2        error

	imageOnce sync.Once
	image     testutil.Image
	imageErr  error

	archiveOnce sync.Once
	archive     string
	archiveErr  error
}

// transferImage builds the image: transferLayers layers, each of one
// random (incompressible) file of transferLayerSize and transferSmall
// small text files, on top of nothing runnable, for this machine's
// platform.
func (b *bench) transferImage() (testutil.Image, error) {
	transfer.imageOnce.Do(func() {
		rng := rand.New(rand.NewChaCha8([32]byte{'b', 'e', 'n', 'c', 'h'}))
		gen := &textGen{state: 7}
		var layers [][]byte
		for l := range transferLayers {
			files := testutil.Layer{fmt.Sprintf("l%d/", l): ""}
			big := make([]byte, transferLayerSize)
			for i := 0; i+8 <= len(big); i += 8 {
				v := rng.Uint64()
				for j := range 8 {
					big[i+j] = byte(v >> (8 * j))
				}
			}
			files[fmt.Sprintf("l%d/blob.bin", l)] = string(big)
			for f := range transferSmall {
				small := make([]byte, 256+f*13%4000)
				gen.fill(small)
				files[fmt.Sprintf("l%d/f%03d.txt", l, f)] = string(small)
			}
			layers = append(layers, testutil.TarLayer(files))
		}
		transfer.image, transfer.imageErr = testutil.NewImage(testutil.HostPlatform(), testimage.BusyboxConfig, layers...)
	})
	return transfer.image, transfer.imageErr
}

// transferRegistry starts a registry under the bench's temp dir holding
// the image, and returns it with the image's reference there. The caller
// closes it.
func (b *bench) transferRegistry() (*testutil.Registry, string, error) {
	img, err := b.transferImage()
	if err != nil {
		return nil, "", fmt.Errorf("build the image: %w", err)
	}
	dir, err := b.newDir("registry")
	if err != nil {
		return nil, "", err
	}
	reg, err := testutil.NewRegistry(dir, testutil.RegistryOptions{})
	if err != nil {
		return nil, "", err
	}
	if err := reg.Push(transferRepo, transferTag, img); err != nil {
		reg.Close()
		return nil, "", fmt.Errorf("push the image: %w", err)
	}
	return reg, reg.Ref(transferRepo, transferTag), nil
}

// transferArchive exports the image to an archive once per run, as ctr
// writes one: pulled into containerd 2.x, then `ctr images export`.
func (b *bench) transferArchive(ctx context.Context) (string, error) {
	transfer.archiveOnce.Do(func() {
		transfer.archive, transfer.archiveErr = b.exportTransferImage(ctx)
	})
	return transfer.archive, transfer.archiveErr
}

func (b *bench) exportTransferImage(ctx context.Context) (string, error) {
	theirs, err := b.containerd2Flavor()
	if err != nil {
		return "", err
	}
	reg, ref, err := b.transferRegistry()
	if err != nil {
		return "", err
	}
	defer reg.Close()
	d, err := b.start(ctx, theirs, "")
	if err != nil {
		return "", err
	}
	defer d.stop()
	if _, err := ctr2(ctx, d.address, "images", "pull", "--plain-http", ref); err != nil {
		return "", err
	}
	archive := filepath.Join(b.tmp, "transfer-image.tar")
	if _, err := ctr2(ctx, d.address, "images", "export", archive, ref); err != nil {
		return "", err
	}
	return archive, d.stop()
}

// ctr2 runs containerd 2.x's ctr against the socket at address in the
// bench's namespace.
func ctr2(ctx context.Context, address string, args ...string) (string, error) {
	path, err := filepath.Abs(*ctr2Path)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, path, append([]string{"-a", address, "-n", "bench"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ctr %s: %w\n%s", strings.Join(args, " "), err, lastLines(string(out), 10))
	}
	return string(out), nil
}

// lastLines is the end of ctr's output: the error, without the progress
// bars before it.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
