package local

import (
	"fmt"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BenchmarkWrite writes a 256 MiB blob in 1 MiB chunks, as the Content
// service receives it, and commits it: the sync is part of what a client
// waits for, and on most disks the larger part.
func BenchmarkWrite(b *testing.B) {
	const size, chunk = 256 << 20, 1 << 20
	p, desc := blob(size, 99)
	s, _ := newStore(b)
	b.SetBytes(size)
	i := 0
	for b.Loop() {
		ref := fmt.Sprint("bench-", i)
		i++
		w := openWriter(b, s, ref, ocispec.Descriptor{Size: size})
		for off := 0; off < size; off += chunk {
			write(b, w, p[off:off+chunk])
		}
		if err := w.Commit(ctx, size, desc.Digest); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		s.Delete(ctx, desc.Digest)
		b.StartTimer()
	}
}
