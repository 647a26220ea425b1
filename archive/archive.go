// Package archive applies layer tars onto directories and writes the tar
// of the changes between two directories, as OCI image layers define them.
//
// A layer comes from an image anyone can publish, so Apply treats every
// name in it as hostile: whatever the entries, symlinks, hardlinks and
// whiteouts say, nothing outside the root directory is created, changed or
// removed. See resolve.go for how.
package archive

import "archive/tar"

// Whiteout names, from the OCI image-spec's layer.md.
const (
	// WhiteoutPrefix before a name in a layer deletes that name from the
	// layers below.
	WhiteoutPrefix = ".wh."
	// WhiteoutMetaPrefix marks whiteout names with a special meaning.
	WhiteoutMetaPrefix = WhiteoutPrefix + WhiteoutPrefix
	// WhiteoutOpaqueDir in a directory hides everything the layers below
	// have in it.
	WhiteoutOpaqueDir = WhiteoutMetaPrefix + ".opq"
)

// paxSchilyXattr prefixes extended attributes in PAX records.
const paxSchilyXattr = "SCHILY.xattr."

// ConvertWhiteout handles a whiteout entry in place of Apply's default,
// which deletes what the entry names. dirfd is the entry's parent
// directory, already resolved inside the root, and base its name there:
// WhiteoutOpaqueDir or WhiteoutPrefix+name. An implementation must work
// relative to dirfd and never follow a symlink at base.
type ConvertWhiteout func(hdr *tar.Header, dirfd int, base string) error

// ApplyOptions are the settings of Apply.
type ApplyOptions struct {
	// ConvertWhiteout, if set, handles whiteouts; see WithConvertWhiteout.
	ConvertWhiteout ConvertWhiteout
	// Parents are the directories below root, top first, that parent
	// directories Apply has to create take their attributes from: the
	// lower directories of an overlay whose upper directory is root.
	Parents []string
	// NoSameOwner leaves files owned by the caller instead of the owner
	// the archive names.
	NoSameOwner bool
}

// ApplyOpt sets an ApplyOptions field.
type ApplyOpt func(*ApplyOptions) error

// WithConvertWhiteout makes Apply hand whiteouts to fn instead of deleting
// what they name; OverlayConvertWhiteout turns them into overlayfs ones.
func WithConvertWhiteout(fn ConvertWhiteout) ApplyOpt {
	return func(o *ApplyOptions) error {
		o.ConvertWhiteout = fn
		return nil
	}
}

// WithParents names the lower directories of the overlay whose upper
// directory Apply writes to, top first.
func WithParents(parents []string) ApplyOpt {
	return func(o *ApplyOptions) error {
		o.Parents = parents
		return nil
	}
}

// WithNoSameOwner keeps the caller's ownership of what Apply creates, for
// callers that may not chown.
func WithNoSameOwner() ApplyOpt {
	return func(o *ApplyOptions) error {
		o.NoSameOwner = true
		return nil
	}
}
