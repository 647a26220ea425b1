package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// WriteDiff writes to w the layer tar that turns the directory lower into
// the directory upper: new and changed entries, whiteouts for deleted
// ones. Both trees are walked together in sorted order, so equal trees
// give equal tars.
//
// Entries are compared by type, mode, owner, size, modification time, link
// target, device number and xattrs; regular files that match on all of
// those but whose times have no sub-second part, as after extracting a tar
// that had none, are compared by content as well. A directory that is
// deleted and made again comes out as whiteouts for what it lost, not as
// an opaque marker: without overlayfs' own record the walk cannot tell the
// two apart, and the result applies the same.
func WriteDiff(ctx context.Context, w io.Writer, lower, upper string, opts ...WriteDiffOpt) error {
	var o WriteDiffOptions
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return fmt.Errorf("diff option: %w", err)
		}
	}
	d := &differ{
		opts:  o,
		ctx:   ctx,
		tw:    tar.NewWriter(w),
		lower: lower,
		upper: upper,
		src:   make(map[fileID]string),
		refs:  make(map[fileID][]string),
	}
	if err := d.walk("/", true); err != nil {
		return err
	}
	if err := d.tw.Close(); err != nil {
		return fmt.Errorf("close tar: %w", err)
	}
	return nil
}

// WriteDiffOptions are the settings of WriteDiff.
type WriteDiffOptions struct {
	// SourceDateEpoch, if set, caps modification times, so that the same
	// changes made at different times give the same layer.
	SourceDateEpoch *time.Time
}

// WriteDiffOpt sets a WriteDiffOptions field.
type WriteDiffOpt func(*WriteDiffOptions) error

// WithSourceDateEpoch caps the layer's modification times at tm.
func WithSourceDateEpoch(tm *time.Time) WriteDiffOpt {
	return func(o *WriteDiffOptions) error {
		o.SourceDateEpoch = tm
		return nil
	}
}

type differ struct {
	opts         WriteDiffOptions
	ctx          context.Context
	tw           *tar.Writer
	lower, upper string
	// pending are the unchanged directories on the way to the current
	// one; the first change below them writes them, so that the tar
	// carries every parent's attributes.
	pending []pendingDir
	// src maps a hardlinked inode to the name it was first written as,
	// refs to unchanged names of it seen before that.
	src  map[fileID]string
	refs map[fileID][]string
	bufA []byte
	bufB []byte
}

type pendingDir struct {
	name string
	st   *unix.Stat_t
}

// walk compares directory rel, which exists in upper, with the same in
// lower if inLower.
func (d *differ) walk(rel string, inLower bool) error {
	if err := d.ctx.Err(); err != nil {
		return err
	}
	upperNames, err := readNames(filepath.Join(d.upper, rel))
	if err != nil {
		return err
	}
	var lowerNames []string
	if inLower {
		if lowerNames, err = readNames(filepath.Join(d.lower, rel)); err != nil {
			return err
		}
	}
	for i, j := 0, 0; i < len(lowerNames) || j < len(upperNames); {
		var name string
		var inL, inU bool
		switch {
		case j == len(upperNames) || (i < len(lowerNames) && lowerNames[i] < upperNames[j]):
			name, inL = lowerNames[i], true
			i++
		case i == len(lowerNames) || upperNames[j] < lowerNames[i]:
			name, inU = upperNames[j], true
			j++
		default:
			name, inL, inU = upperNames[j], true, true
			i++
			j++
		}
		p := path.Join(rel, name)
		if !inU {
			if err := d.whiteout(p); err != nil {
				return err
			}
			continue
		}
		if err := d.compare(p, inL); err != nil {
			return err
		}
	}
	return nil
}

// compare handles name p, present in upper and, if inLower, in lower.
func (d *differ) compare(p string, inLower bool) error {
	var us unix.Stat_t
	if err := unix.Lstat(filepath.Join(d.upper, p), &us); err != nil {
		return fmt.Errorf("stat %s: %w", p, err)
	}
	if us.Mode&unix.S_IFMT == unix.S_IFSOCK {
		return nil // sockets do not go in layers
	}
	var ls unix.Stat_t
	if inLower {
		if err := unix.Lstat(filepath.Join(d.lower, p), &ls); err != nil {
			if !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("stat %s: %w", p, err)
			}
			inLower = false
		}
	}
	isDir := us.Mode&unix.S_IFMT == unix.S_IFDIR
	sameType := inLower && ls.Mode&unix.S_IFMT == us.Mode&unix.S_IFMT
	changed := true
	if sameType {
		var err error
		if changed, err = d.changed(p, &ls, &us); err != nil {
			return err
		}
	}
	if !isDir {
		return d.add(p, &us, !changed)
	}
	if changed {
		if err := d.add(p, &us, false); err != nil {
			return err
		}
	} else {
		d.pending = append(d.pending, pendingDir{p, &us})
	}
	// Below a directory that was not one in lower everything is new.
	err := d.walk(p, sameType)
	if n := len(d.pending); n > 0 && d.pending[n-1].name == p {
		d.pending = d.pending[:n-1]
	}
	return err
}

// changed reports whether p differs between lower and upper, which have
// the same type.
func (d *differ) changed(p string, ls, us *unix.Stat_t) (bool, error) {
	if ls.Mode != us.Mode || ls.Uid != us.Uid || ls.Gid != us.Gid || ls.Rdev != us.Rdev ||
		ls.Mtim != us.Mtim || (us.Mode&unix.S_IFMT != unix.S_IFDIR && ls.Size != us.Size) {
		return true, nil
	}
	lx, err := diffXattrs(filepath.Join(d.lower, p))
	if err != nil {
		return false, err
	}
	ux, err := diffXattrs(filepath.Join(d.upper, p))
	if err != nil {
		return false, err
	}
	if !equalXattrs(lx, ux) {
		return true, nil
	}
	switch us.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		lt, err := os.Readlink(filepath.Join(d.lower, p))
		if err != nil {
			return false, err
		}
		ut, err := os.Readlink(filepath.Join(d.upper, p))
		if err != nil {
			return false, err
		}
		return lt != ut, nil
	case unix.S_IFREG:
		// Equal whole-second times say little: tar extraction without
		// sub-second times makes them equal for different files.
		if us.Mtim.Nsec == 0 && us.Size > 0 {
			same, err := d.sameContent(filepath.Join(d.lower, p), filepath.Join(d.upper, p))
			return !same, err
		}
	}
	return false, nil
}

func (d *differ) sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	if d.bufA == nil {
		d.bufA, d.bufB = make([]byte, 128<<10), make([]byte, 128<<10)
	}
	for {
		na, ea := io.ReadFull(fa, d.bufA)
		nb, eb := io.ReadFull(fb, d.bufB)
		if !bytes.Equal(d.bufA[:na], d.bufB[:nb]) {
			return false, nil
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF || eb == io.EOF || eb == io.ErrUnexpectedEOF {
			return (ea == io.EOF || ea == io.ErrUnexpectedEOF) && (eb == io.EOF || eb == io.ErrUnexpectedEOF), nil
		}
		if ea != nil {
			return false, ea
		}
		if eb != nil {
			return false, eb
		}
	}
}

// whiteout writes the deletion of p.
func (d *differ) whiteout(p string) error {
	if err := d.flushPending(); err != nil {
		return err
	}
	dir, base := path.Split(p)
	epoch := time.Unix(0, 0).UTC()
	hdr := &tar.Header{
		Typeflag:   tar.TypeReg,
		Name:       strings.TrimPrefix(dir+WhiteoutPrefix+base, "/"),
		ModTime:    epoch,
		AccessTime: epoch,
		ChangeTime: epoch,
		Format:     tar.FormatPAX,
	}
	if err := d.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write whiteout for %s: %w", p, err)
	}
	return nil
}

// add writes p from upper. unchanged is set for a hardlinked file that
// is the same as in lower: it is written only if another name of its
// inode is, so that the link survives.
func (d *differ) add(p string, st *unix.Stat_t, unchanged bool) error {
	id := fileID{uint64(st.Dev), st.Ino}
	linked := st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Nlink > 1
	if unchanged {
		if linked {
			if _, ok := d.src[id]; !ok {
				d.refs[id] = append(d.refs[id], p)
			}
		}
		return nil
	}
	if err := d.flushPending(); err != nil {
		return err
	}
	if linked {
		if src, ok := d.src[id]; ok {
			return d.writeLink(p, st, src)
		}
		d.src[id] = p
	}
	if err := d.writeEntry(p, st); err != nil {
		return err
	}
	if linked {
		for _, ref := range d.refs[id] {
			if err := d.writeLink(ref, st, p); err != nil {
				return err
			}
		}
		delete(d.refs, id)
	}
	return nil
}

func (d *differ) flushPending() error {
	for _, pd := range d.pending {
		if err := d.writeEntry(pd.name, pd.st); err != nil {
			return err
		}
	}
	d.pending = d.pending[:0]
	return nil
}

func (d *differ) header(p string, st *unix.Stat_t) (*tar.Header, error) {
	hdr := &tar.Header{
		Name:    strings.TrimPrefix(p, "/"),
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, 0),
		Format:  tar.FormatPAX,
	}
	if e := d.opts.SourceDateEpoch; e != nil && hdr.ModTime.After(*e) {
		hdr.ModTime = e.Truncate(time.Second)
	}
	full := filepath.Join(d.upper, p)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case unix.S_IFLNK:
		target, err := os.Readlink(full)
		if err != nil {
			return nil, err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil, fmt.Errorf("%s: unsupported file type %o", p, st.Mode&unix.S_IFMT)
	}
	x, err := diffXattrs(full)
	if err != nil {
		return nil, err
	}
	for k, v := range x {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = make(map[string]string)
		}
		hdr.PAXRecords[paxSchilyXattr+k] = v
	}
	return hdr, nil
}

func (d *differ) writeEntry(p string, st *unix.Stat_t) error {
	hdr, err := d.header(p, st)
	if err != nil {
		return fmt.Errorf("header for %s: %w", p, err)
	}
	if err := d.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write header for %s: %w", p, err)
	}
	if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
		return nil
	}
	f, err := os.Open(filepath.Join(d.upper, p))
	if err != nil {
		return err
	}
	defer f.Close()
	buf := getBuffer()
	defer putBuffer(buf)
	n, err := io.CopyBuffer(d.tw, io.LimitReader(f, hdr.Size), *buf)
	if err != nil {
		return fmt.Errorf("copy %s: %w", p, err)
	}
	if n != hdr.Size {
		return fmt.Errorf("copy %s: changed size while being read", p)
	}
	return nil
}

func (d *differ) writeLink(p string, st *unix.Stat_t, target string) error {
	hdr, err := d.header(p, st)
	if err != nil {
		return fmt.Errorf("header for %s: %w", p, err)
	}
	hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, strings.TrimPrefix(target, "/"), 0
	if err := d.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write header for %s: %w", p, err)
	}
	return nil
}

// readNames returns the sorted names in dir.
func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	sort.Strings(names)
	return names, nil
}

// diffXattrs returns the xattrs of p that belong in a layer: all but the
// trusted.* ones, which are the host's (overlayfs keeps its own there),
// and security.selinux, which labels files for this host's policy.
func diffXattrs(p string) (map[string]string, error) {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, fmt.Errorf("list xattrs of %s: %w", p, err)
	}
	if sz == 0 {
		return nil, nil
	}
	buf := make([]byte, sz)
	if sz, err = unix.Llistxattr(p, buf); err != nil {
		return nil, fmt.Errorf("list xattrs of %s: %w", p, err)
	}
	var out map[string]string
	for _, k := range strings.Split(string(buf[:sz]), "\x00") {
		if k == "" || strings.HasPrefix(k, "trusted.") || k == "security.selinux" {
			continue
		}
		vsz, err := unix.Lgetxattr(p, k, nil)
		if err != nil {
			if errors.Is(err, unix.ENODATA) {
				continue
			}
			return nil, fmt.Errorf("get xattr %s of %s: %w", k, p, err)
		}
		v := make([]byte, vsz)
		if vsz, err = unix.Lgetxattr(p, k, v); err != nil {
			return nil, fmt.Errorf("get xattr %s of %s: %w", k, p, err)
		}
		if out == nil {
			out = make(map[string]string)
		}
		out[k] = string(v[:vsz])
	}
	return out, nil
}

func equalXattrs(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
