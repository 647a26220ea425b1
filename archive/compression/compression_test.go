package compression

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/llitfkitfk/containerd/errdefs"
)

func sample() []byte {
	b := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range b {
		b[i] = "abcdefgh \n"[r.IntN(10)]
	}
	return b
}

func compress(t *testing.T, b []byte, c Compression) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := CompressStream(&buf, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	data := sample()
	for _, c := range []Compression{Uncompressed, Gzip, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			z := compress(t, data, c)
			if got := DetectCompression(z); got != c {
				t.Errorf("detected %v", got)
			}
			for name, open := range map[string]func() (DecompressReadCloser, error){
				"detect":    func() (DecompressReadCloser, error) { return DecompressStream(bytes.NewReader(z)) },
				"mediatype": func() (DecompressReadCloser, error) { return NewDecompressor(bytes.NewReader(z), c) },
			} {
				r, err := open()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				got, err := io.ReadAll(r)
				if err != nil {
					t.Fatalf("%s: read: %v", name, err)
				}
				if r.Compression() != c {
					t.Errorf("%s: Compression() = %v", name, r.Compression())
				}
				if !bytes.Equal(got, data) {
					t.Errorf("%s: round trip differs", name)
				}
				if err := r.Close(); err != nil {
					t.Errorf("%s: close: %v", name, err)
				}
			}
		})
	}
}

func TestDetect(t *testing.T) {
	skippable := make([]byte, 12)
	binary.LittleEndian.PutUint32(skippable, 0x184d2a5e)
	for _, tc := range []struct {
		in   []byte
		want Compression
	}{
		{nil, Uncompressed},
		{[]byte{0x1f}, Uncompressed},
		{[]byte{0x1f, 0x8b, 0x08, 0}, Gzip},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd}, Zstd},
		{skippable, Zstd},
		{[]byte("ustar\x00"), Uncompressed},
	} {
		if got := DetectCompression(tc.in); got != tc.want {
			t.Errorf("DetectCompression(%x) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestEmptyStream(t *testing.T) {
	r, err := DecompressStream(bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if b, err := io.ReadAll(r); err != nil || len(b) != 0 || r.Compression() != Uncompressed {
		t.Errorf("empty stream: %q, %v, %v", b, err, r.Compression())
	}
}

func TestCorrupt(t *testing.T) {
	for _, c := range []Compression{Gzip, Zstd} {
		z := compress(t, sample(), c)
		z[len(z)/2] ^= 0x55
		r, err := NewDecompressor(bytes.NewReader(z), c)
		if err == nil {
			_, err = io.ReadAll(r)
			r.Close()
		}
		if err == nil {
			t.Errorf("%v: corrupt stream read without error", c)
		}
	}
	if _, err := NewDecompressor(bytes.NewReader([]byte("not gzip")), Gzip); err == nil {
		t.Error("gzip decoder accepted a non-gzip stream")
	}
}

func TestMediaTypes(t *testing.T) {
	for mt, want := range map[string]Compression{
		MediaTypeImageLayer:                     Uncompressed,
		MediaTypeImageLayerGzip:                 Gzip,
		MediaTypeImageLayerZstd:                 Zstd,
		MediaTypeDockerLayer:                    Uncompressed,
		MediaTypeDockerLayerGzip:                Gzip,
		MediaTypeDockerForeignLayer:             Gzip,
		MediaTypeImageLayerNonDistributableGzip: Gzip,
	} {
		got, err := FromMediaType(mt)
		if err != nil || got != want {
			t.Errorf("FromMediaType(%q) = %v, %v; want %v", mt, got, err, want)
		}
	}
	for _, mt := range []string{"", "application/octet-stream", MediaTypeImageLayerGzip + "+encrypted", "application/vnd.oci.image.layer.v1.tar+bzip2"} {
		if _, err := FromMediaType(mt); !errdefs.IsNotImplemented(err) {
			t.Errorf("FromMediaType(%q): err = %v, want NotImplemented", mt, err)
		}
	}
	for _, c := range []Compression{Uncompressed, Gzip, Zstd} {
		mt, err := MediaType(c)
		if err != nil {
			t.Fatal(err)
		}
		if back, _ := FromMediaType(mt); back != c {
			t.Errorf("MediaType(%v) = %q, which maps back to %v", c, mt, back)
		}
	}
	if _, err := MediaType(Unknown); !errdefs.IsNotImplemented(err) {
		t.Errorf("MediaType(Unknown): %v", err)
	}
}

// BenchmarkDecompress measures the decoders on text-like data.
func BenchmarkDecompress(b *testing.B) {
	data := make([]byte, 32<<20)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = "abcdefghijklmnop \n\t{}();"[r.IntN(24)]
	}
	for _, c := range []Compression{Gzip, Zstd} {
		var buf bytes.Buffer
		w, _ := CompressStream(&buf, c)
		w.Write(data)
		w.Close()
		z := buf.Bytes()
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for i := 0; i < b.N; i++ {
				d, err := NewDecompressor(bytes.NewReader(z), c)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, d); err != nil {
					b.Fatal(err)
				}
				d.Close()
			}
		})
	}
}
