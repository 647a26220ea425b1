// Package compression detects, decompresses and compresses the streams that
// image layers are stored as: gzip, zstd, or plain tar.
package compression

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Compression is a stream's compression algorithm.
type Compression int

const (
	// Uncompressed is a plain stream.
	Uncompressed Compression = iota
	// Gzip is RFC 1952 gzip.
	Gzip
	// Zstd is RFC 8878 Zstandard.
	Zstd
	// Unknown is an algorithm this package cannot handle.
	Unknown
)

// String returns the algorithm's name as media types spell it.
func (c Compression) String() string {
	switch c {
	case Uncompressed:
		return "uncompressed"
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return "unknown"
}

// Extension returns the file name extension for c, without the dot; ""
// for an uncompressed stream.
func (c Compression) Extension() string {
	switch c {
	case Gzip:
		return "gz"
	case Zstd:
		return "zst"
	}
	return ""
}

var (
	gzipMagic = []byte{0x1f, 0x8b, 0x08}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// Zstd skippable frames carry a magic number in 0x184D2A50–0x184D2A5F; a
// stream may open with one (seekable zstd, for instance).
const (
	zstdSkippableMagic = 0x184d2a50
	zstdSkippableMask  = 0xfffffff0
)

// DetectCompression reports the algorithm whose magic number source
// starts with. Ten bytes are enough to decide.
func DetectCompression(source []byte) Compression {
	switch {
	case bytes.HasPrefix(source, gzipMagic):
		return Gzip
	case bytes.HasPrefix(source, zstdMagic):
		return Zstd
	case len(source) >= 8 && binary.LittleEndian.Uint32(source)&zstdSkippableMask == zstdSkippableMagic:
		return Zstd
	}
	return Uncompressed
}

// DecompressReadCloser is a decompressed stream that knows what it was
// compressed with. Close releases the decoder; it does not close the
// underlying reader.
type DecompressReadCloser interface {
	io.ReadCloser
	// Compression returns the algorithm the stream was compressed with.
	Compression() Compression
}

type decompressed struct {
	io.Reader
	compression Compression
	close       func() error
}

func (d *decompressed) Compression() Compression { return d.compression }

func (d *decompressed) Close() error {
	if d.close == nil {
		return nil
	}
	err := d.close()
	d.close = nil
	return err
}

// bufSize is big enough that decoders and the tar reader above them make
// few calls into a content store reader.
const bufSize = 1 << 20

var bufPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufSize) }}

// DecompressStream returns r decompressed, detecting the algorithm from
// the stream's first bytes. An empty stream is an empty uncompressed one.
func DecompressStream(r io.Reader) (DecompressReadCloser, error) {
	br := bufPool.Get().(*bufio.Reader)
	br.Reset(r)
	release := func() error {
		br.Reset(nil)
		bufPool.Put(br)
		return nil
	}
	magic, err := br.Peek(10)
	if err != nil && err != io.EOF {
		release()
		return nil, fmt.Errorf("read compression magic: %w", err)
	}
	c := DetectCompression(magic)
	d, err := decompress(br, c)
	if err != nil {
		release()
		return nil, err
	}
	inner := d.close
	d.close = func() error {
		err := inner()
		release()
		return err
	}
	return d, nil
}

// NewDecompressor decompresses r as c, without looking at its magic: for
// callers that know the algorithm from a media type.
func NewDecompressor(r io.Reader, c Compression) (DecompressReadCloser, error) {
	br := bufPool.Get().(*bufio.Reader)
	br.Reset(r)
	d, err := decompress(br, c)
	if err != nil {
		br.Reset(nil)
		bufPool.Put(br)
		return nil, err
	}
	inner := d.close
	d.close = func() error {
		err := inner()
		br.Reset(nil)
		bufPool.Put(br)
		return err
	}
	return d, nil
}

func decompress(br *bufio.Reader, c Compression) (*decompressed, error) {
	switch c {
	case Uncompressed:
		return &decompressed{Reader: br, compression: c, close: func() error { return nil }}, nil
	case Gzip:
		// pgzip inflates ahead of the reader in its own goroutine, with
		// the same inflater as klauspost's gzip, so decoding overlaps with
		// what the caller does with the data: applying a 200 MB layer from
		// gzip on 2 cores took a third less time than inflating inline.
		zr, err := pgzip.NewReaderN(br, gzipBlockSize, gzipBlocks)
		if err != nil {
			return nil, fmt.Errorf("open gzip stream: %w", err)
		}
		return &decompressed{Reader: zr, compression: c, close: zr.Close}, nil
	case Zstd:
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("open zstd stream: %w", err)
		}
		return &decompressed{Reader: zr, compression: c, close: func() error { zr.Close(); return nil }}, nil
	}
	return nil, fmt.Errorf("unsupported compression %v", c)
}

// pgzip reads ahead gzipBlocks blocks of gzipBlockSize decompressed bytes.
const (
	gzipBlockSize = 1 << 20
	gzipBlocks    = 4
)

// CompressStream returns a writer that compresses into w with c. Close
// flushes the compressor; it does not close w.
func CompressStream(w io.Writer, c Compression) (io.WriteCloser, error) {
	switch c {
	case Uncompressed:
		return nopWriteCloser{w}, nil
	case Gzip:
		// Layers are written once and pulled many times: the default
		// level, not the fastest.
		return kgzip.NewWriterLevel(w, kgzip.DefaultCompression)
	case Zstd:
		return zstd.NewWriter(w)
	}
	return nil, fmt.Errorf("unsupported compression %v", c)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
