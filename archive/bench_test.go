package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchLayer returns a layer tar shaped like a distribution image's: files
// small files in a few hundred directories, a few big ones, some links.
func benchLayer(tb testing.TB, files int) ([]byte, int) {
	rng := rand.New(rand.NewPCG(1, 2))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	write := func(h *tar.Header, data []byte) {
		h.ModTime, h.Format = testTime, tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			tb.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			tb.Fatal(err)
		}
	}
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(rng.Uint32() >> 24 & 0x7f) // text-like
	}
	entries := 0
	dirs := files / 25
	for d := 0; d < dirs; d++ {
		dir := fmt.Sprintf("usr/share/pkg%03d/sub%d/", d/4, d%4)
		write(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755}, nil)
		entries++
		for f := 0; f < files/dirs; f++ {
			size := 64 + rng.IntN(8<<10)
			off := rng.IntN(len(data) - size)
			write(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%sfile%03d.txt", dir, f), Mode: 0o644, Size: int64(size)}, data[off:off+size])
			entries++
		}
		write(&tar.Header{Typeflag: tar.TypeSymlink, Name: dir + "link", Linkname: "file000.txt", Mode: 0o777}, nil)
		write(&tar.Header{Typeflag: tar.TypeLink, Name: dir + "hard", Linkname: dir + "file001.txt", Mode: 0o644}, nil)
		entries += 2
	}
	write(&tar.Header{Typeflag: tar.TypeDir, Name: "usr/lib/", Mode: 0o755}, nil)
	for i := 0; i < 4; i++ {
		write(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("usr/lib/big%d.so", i), Mode: 0o755, Size: 8 << 20}, data[i<<20:i<<20+8<<20])
		entries++
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes(), entries
}

// BenchmarkApply applies a layer of 10,000 small files and four 8 MiB
// ones onto an empty directory on the temp filesystem.
func BenchmarkApply(b *testing.B) {
	layer, entries := benchLayer(b, 10000)
	dir := b.TempDir()
	b.SetBytes(int64(len(layer)))
	b.ResetTimer()
	var applying time.Duration
	for i := 0; i < b.N; i++ {
		root := filepath.Join(dir, fmt.Sprint(i))
		if err := os.Mkdir(root, 0o755); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := Apply(context.Background(), root, bytes.NewReader(layer)); err != nil {
			b.Fatal(err)
		}
		applying += time.Since(start)
		b.StopTimer()
		os.RemoveAll(root)
		b.StartTimer()
	}
	b.ReportMetric(float64(entries)*float64(b.N)/applying.Seconds(), "files/s")
}
