package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// Structured fuzz input: after a first byte with bit 0 set (bit 1
// converts whiteouts), each entry is four bytes — kind, component count
// and first component, second and third components, link target — over
// the small vocabularies below, which hold the parts of every trick in
// hostile_test.go. A first byte with bit 0 clear feeds the rest to Apply
// as a raw tar instead.
var (
	fuzzComponents = []string{
		"a", "b", "l", "..", ".", "", "x", "passwd", "sub", "outside",
		".wh.a", ".wh.l", ".wh.x", WhiteoutOpaqueDir, ".wh...", ".wh..", ".wh.",
		strings.Repeat("n", 255), strings.Repeat("n", 256),
	}
	// "@" stands for the absolute path of the sandbox's outside directory.
	fuzzTargets = []string{
		"/", "..", "../..", "../../..", "../outside", "../../outside/x", "@", "@/x", "@/sub",
		"a", "l", "l/x", "a/../..", "/a", "/l/..", "x", "passwd", "", ".",
		strings.Repeat("../", 64) + "outside",
	}
	fuzzKinds = []byte{tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo, tar.TypeChar, tar.TypeBlock, tar.TypeReg}
)

// fuzzEntries decodes structured input into entries for sandbox s.
func fuzzEntries(data []byte, s *sandbox) []ent {
	var es []ent
	for len(data) >= 4 && len(es) < 64 {
		kind, comps, target := data[0], data[1], data[3]
		n := int(comps>>6)%3 + 1
		idx := []byte{comps & 0x3f, data[2] & 0x0f, data[2] >> 4}
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fuzzComponents[int(idx[i])%len(fuzzComponents)]
		}
		name := strings.Join(parts, "/")
		if kind&0x80 != 0 {
			name = "/" + name
		}
		linkname := strings.ReplaceAll(fuzzTargets[int(target)%len(fuzzTargets)], "@", s.outside)
		h := tar.Header{
			Typeflag: fuzzKinds[int(kind)%len(fuzzKinds)],
			Name:     name,
			Mode:     int64(kind&0x70)<<5 | 0o644,
			Uid:      int(kind >> 4 & 3),
			ModTime:  testTime,
			Format:   tar.FormatPAX,
		}
		e := ent{Header: h}
		switch h.Typeflag {
		case tar.TypeReg:
			e.data = "fuzz"
			e.Size = 4
		case tar.TypeSymlink, tar.TypeLink:
			e.Linkname = linkname
		case tar.TypeChar, tar.TypeBlock:
			e.Devmajor, e.Devminor = 1, int64(target)
		}
		if kind&0x08 != 0 {
			e.PAXRecords = map[string]string{"SCHILY.xattr.user.f": "z", "SCHILY.xattr.trusted.overlay.opaque": "y"}
		}
		es = append(es, e)
		data = data[4:]
	}
	return es
}

// encodeEntry is fuzzEntries' inverse for building seeds: components and
// target are indexes into the vocabularies.
func encodeEntry(kind, abs byte, target byte, comps ...byte) []byte {
	if abs != 0 {
		kind |= 0x80
	}
	c := []byte{0, 0, 0}
	copy(c, comps)
	return []byte{kind, byte(len(comps)-1)<<6 | c[0], c[1] | c[2]<<4, target}
}

func FuzzApply(f *testing.F) {
	const (
		reg, dir, sym, link, fifo, char = 0, 1, 2, 3, 4, 5
		cA, cB, cL, cDotDot, cDot       = 0, 1, 2, 3, 4
		cX, cPasswd, cSub, cOutside     = 6, 7, 8, 9
		cWhX, cOpq, cWhDotDot           = 12, 13, 14
		tUp, tOutsideRel, tAbs, tAbsX   = 1, 4, 6, 7
		tLX, tDeep                      = 11, 19
	)
	seeds := [][]byte{
		// symlink to outside, then write, link, whiteout, opaque through it
		bytes.Join([][]byte{{1}, encodeEntry(sym, 0, tAbs, cL), encodeEntry(reg, 0, 0, cL, cX), encodeEntry(link, 0, tLX, cA),
			encodeEntry(reg, 0, 0, cL, cWhX), encodeEntry(reg, 0, 0, cL, cOpq)}, nil),
		// relative escape, symlink replacing a directory
		bytes.Join([][]byte{{3}, encodeEntry(dir, 0, 0, cA), encodeEntry(sym, 0, tOutsideRel, cA), encodeEntry(reg, 0, 0, cA, cPasswd),
			encodeEntry(reg, 0, 0, cDotDot, cOutside, cX), encodeEntry(reg, 0, 0, cA, cWhDotDot)}, nil),
		// deep relative target, hardlink to outside, devices
		bytes.Join([][]byte{{1}, encodeEntry(sym, 0, tDeep, cB), encodeEntry(fifo, 0, 0, cB, cSub), encodeEntry(link, 1, tAbsX, cX),
			encodeEntry(char, 0, 3, cB, cX), encodeEntry(sym, 0, tUp, cDot, cL), encodeEntry(reg, 0, 0, cL, cOutside, cX)}, nil),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Add(append([]byte{0}, tarBytes(f, fileEnt("../../x", "x"), symlinkEnt("l", "/"), fileEnt("l/x", "y"), linkEnt("h", "../x"))...))
	f.Add(append([]byte{2}, tarBytes(f, dirEnt("d/"), opaqueEnt("d"), whiteoutEnt("d", "x"))...))

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		s := newSandboxIn(t, fuzzDir(t))
		var opts []ApplyOpt
		if data[0]&2 != 0 {
			opts = append(opts, WithConvertWhiteout(OverlayConvertWhiteout))
		}
		var r *bytes.Reader
		if data[0]&1 != 0 {
			es := fuzzEntries(data[1:], s)
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, e := range es {
				if tw.WriteHeader(&e.Header) != nil {
					return
				}
				tw.Write([]byte(e.data))
			}
			tw.Close()
			r = bytes.NewReader(buf.Bytes())
		} else {
			r = bytes.NewReader(data[1:])
		}
		before := s.outsideState(t)
		// Sparse entries can claim terabytes of zeros; they cost time,
		// which the caller's context bounds.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		Apply(ctx, s.root, r, opts...) // errors are fine; escapes are not
		if after := s.outsideState(t); after != before {
			t.Fatalf("outside root changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

// fuzzDir returns an empty directory for one fuzz run, on tmpfs where
// there is one: the sandbox costs a dozen file creations per run, which
// on a disk filesystem dominate the run.
func fuzzDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/dev/shm", "fuzz-apply-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
