package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sparseTar returns a tar holding a PAX (GNU 0.1) sparse file of logical
// size size whose only data is "hello" at offset 0. archive/tar writes no
// sparse files, so the blocks are made by hand.
func sparseTar(name string, size int64) []byte {
	var pax strings.Builder
	for _, kv := range [][2]string{
		{"GNU.sparse.map", "0,5"},
		{"GNU.sparse.numblocks", "1"},
		{"GNU.sparse.size", strconv.FormatInt(size, 10)},
		{"path", name},
	} {
		rec := " " + kv[0] + "=" + kv[1] + "\n"
		n := len(rec) + 1 // the length prefix counts itself
		for len(strconv.Itoa(n))+len(rec) != n {
			n = len(strconv.Itoa(n)) + len(rec)
		}
		pax.WriteString(strconv.Itoa(n) + rec)
	}
	var out []byte
	out = append(out, rawHeader("PaxHeaders/x", tar.TypeXHeader, int64(pax.Len()))...)
	out = append(out, padBlock([]byte(pax.String()))...)
	out = append(out, rawHeader("placeholder", tar.TypeReg, 5)...)
	out = append(out, padBlock([]byte("hello"))...)
	return append(out, make([]byte, 1024)...)
}

// rawHeader is a ustar header block.
func rawHeader(name string, typ byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], "00000000000\x00")
	b[156] = typ
	copy(b[257:265], "ustar\x0000")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func padBlock(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

func TestApplySparse(t *testing.T) {
	root := t.TempDir()
	const size = 1 << 30
	if _, err := Apply(context.Background(), root, bytes.NewReader(sparseTar("sparse", size))); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "sparse")
	st := lstat(t, p)
	if st.Size != size {
		t.Errorf("size %d, want %d", st.Size, size)
	}
	if st.Blocks*512 > 1<<20 {
		t.Errorf("%d bytes allocated: zeros were written, not skipped", st.Blocks*512)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, 8)
	f.Read(head)
	if string(head) != "hello\x00\x00\x00" {
		t.Errorf("starts with %q", head)
	}
}

func TestApplySparseHugeIsCancelable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	// 8 TiB of zeros: far more than the test could expand.
	_, err := Apply(ctx, t.TempDir(), bytes.NewReader(sparseTar("huge", 8<<40)))
	if err == nil {
		t.Fatal("8 TiB sparse file applied within 300ms")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to notice the cancellation", d)
	}
}
