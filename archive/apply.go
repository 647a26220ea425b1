package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/sys"
)

// errInvalidArchive marks entries Apply refuses outright.
var errInvalidArchive = errors.New("invalid archive")

// Apply applies the uncompressed layer tar r onto the directory root, as
// the OCI image-spec's layer.md defines: entries are added or replace what
// is there, whiteouts delete. It reads r to EOF, past the end of the tar,
// and returns the number of bytes read: the layer's uncompressed size.
//
// Nothing outside root is created, changed or removed, whatever r holds.
// Apply is not atomic: on error root holds part of the layer.
func Apply(ctx context.Context, root string, r io.Reader, opts ...ApplyOpt) (int64, error) {
	var o ApplyOptions
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return 0, fmt.Errorf("apply option: %w", err)
		}
	}
	res, err := newResolver(filepath.Clean(root), o.Parents)
	if err != nil {
		return 0, err
	}
	defer res.close()

	cr := &countingReader{r: r}
	a := &applier{
		res:      res,
		opts:     o,
		opaqued:  make(map[fileID]struct{}),
		inUserNS: sys.RunningInUserNS(),
	}
	if o.ConvertWhiteout == nil {
		a.unpacked = make(map[entryKey]struct{})
	}
	a.buf = getBuffer()
	defer putBuffer(a.buf)

	if err := a.run(ctx, tar.NewReader(cr)); err != nil {
		return cr.n, err
	}
	// The layer's digest covers every byte of the blob, including the
	// padding after the tar's end marker.
	if _, err := io.CopyBuffer(io.Discard, cr, *a.buf); err != nil {
		return cr.n, fmt.Errorf("read past end of tar: %w", err)
	}
	return cr.n, nil
}

// applier is the state of one Apply.
type applier struct {
	res  *resolver
	opts ApplyOptions
	buf  *[]byte
	// unpacked holds what this layer has put in place, so that an opaque
	// marker, which may come after entries of its own directory, deletes
	// only what the layers below put there. Nil when whiteouts are
	// converted, which deletes nothing.
	unpacked map[entryKey]struct{}
	// opaqued holds the directories already made opaque.
	opaqued  map[fileID]struct{}
	dirs     []dirTimes
	inUserNS bool
}

// entryKey names a directory entry by its parent's inode, so that the same
// entry reached through different symlinks is the same key.
type entryKey struct {
	dir  fileID
	name string
}

// dirTimes are the times of a directory entry, set once all entries are
// in place since each one added to a directory changes its mtime.
type dirTimes struct {
	name string
	ts   [2]unix.Timespec
}

func (a *applier) run(ctx context.Context, tr *tar.Reader) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar header: %w", err)
		}
		if err := a.entry(ctx, hdr, tr); err != nil {
			return fmt.Errorf("apply %q: %w", shorten(hdr.Name), err)
		}
	}
	return a.setDirTimes()
}

func (a *applier) entry(ctx context.Context, hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil // records for the whole archive; nothing to apply
	case tar.TypeBlock, tar.TypeChar:
		if a.inUserNS {
			// Device nodes cannot be made in a user namespace.
			log.G(ctx).Warnf("skip device %q: running in a user namespace", hdr.Name)
			return nil
		}
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo:
	default:
		return fmt.Errorf("unsupported tar entry type %q: %w", hdr.Typeflag, errInvalidArchive)
	}

	// Cleaning under "/" removes every ".." that could climb above root:
	// "../../etc/passwd" becomes "/etc/passwd", inside root. Symlinks on
	// the way are the resolver's business.
	name := path.Clean("/" + hdr.Name)
	if name == "/" {
		return nil // root itself is the caller's
	}
	parent, base := path.Split(name)
	parent = path.Clean(parent)

	if strings.HasPrefix(base, WhiteoutPrefix) {
		return a.whiteout(hdr, parent, base)
	}

	h, err := a.res.dir(parent, true)
	if err != nil {
		return err
	}
	defer a.res.release(h)

	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse: // the reader turns TypeRegA into TypeReg
		err = a.file(ctx, h, base, hdr, r)
	case tar.TypeDir:
		err = a.dir(ctx, h, name, base, hdr)
	case tar.TypeSymlink:
		err = a.symlink(ctx, h, base, hdr)
	case tar.TypeLink:
		err = a.hardlink(ctx, h, base, hdr)
	default: // devices and fifos
		err = a.special(ctx, h, base, hdr)
	}
	if err != nil {
		return err
	}
	if a.unpacked != nil {
		id, err := h.ID()
		if err != nil {
			return err
		}
		a.unpacked[entryKey{id, base}] = struct{}{}
	}
	return nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
