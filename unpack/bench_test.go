package unpack

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/llitfkitfk/containerd/diff/apply"
)

// BenchmarkUnpack unpacks a six-layer image (gzip, 4 MiB of files each)
// onto overlay, in order and in parallel.
func BenchmarkUnpack(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	var layers []testLayer
	for i := 0; i < 6; i++ {
		l := testLayer{gzip: true, entries: []entry{{fmt.Sprintf("l%d/", i), ""}}}
		for j := 0; j < 64; j++ {
			// Half random, half repeated: gzip has work on both.
			p := make([]byte, 32<<10)
			rng.Read(p[:16<<10])
			l.entries = append(l.entries, entry{fmt.Sprintf("l%d/f%d", i, j), string(p)})
		}
		layers = append(layers, l)
	}
	for _, mode := range []struct {
		name string
		caps []string
	}{{"serial", nil}, {"parallel", []string{CapRebase}}} {
		b.Run(mode.name, func(b *testing.B) {
			cs := newStore(b)
			img := buildImage(b, cs, layers, -1)
			var size int64
			for _, l := range img.layers {
				size += l.Size
			}
			b.SetBytes(size)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				sn, _ := newOverlay(b)
				p := platformFor("overlayfs", sn, mode.caps, &countingApplier{Applier: apply.NewFileSystemApplier(cs)})
				b.StartTimer()
				if _, err := pull(cs, img, p, newFetcher(nil), 3); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if n := len(snapshotsOf(b, sn)); n != len(layers) {
					b.Fatalf("%d snapshots, want %d", n, len(layers))
				}
				b.StartTimer()
			}
		})
	}
}
