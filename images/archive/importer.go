package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/log"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Limits on what an archive may make us hold or do. An archive is
// untrusted input: these turn a hostile one into an error, not an outage.
const (
	// maxJSON bounds each metadata file read into memory (index.json,
	// manifest.json, oci-layout, repositories).
	maxJSON = 8 << 20
	// maxEntries bounds the files of an archive, each of which becomes
	// an ingest.
	maxEntries = 10000
	// maxOpenWriters bounds the ingests held open while the rest of the
	// archive is read; past it, an ingest is closed and resumed (its data
	// hashed again) at commit. Few archives have more blobs than this.
	maxOpenWriters = 128
	// maxLinkDepth bounds chains of symbolic links in docker archives.
	maxLinkDepth = 16
	// copyBufSize is the size of the one buffer a blob is copied through:
	// large writes are what the content store is fastest with.
	copyBufSize = 1 << 20
)

// Names of the metadata files at the root of an archive.
const (
	dockerManifestFile = "manifest.json"
	dockerReposFile    = "repositories"
)

// Annotations on the index's descriptors, naming the images.
const (
	// AnnotationImageName is the image's full name (containerd's).
	AnnotationImageName = "io.containerd.image.name"
	// AnnotationRefName is the OCI name: the tag alone.
	AnnotationRefName = ocispec.AnnotationRefName
)

// WithImportCompression gzips the uncompressed layers of a docker save
// archive as they are imported (labelling each with its uncompressed
// digest), as containerd's option of the same name does.
func WithImportCompression() ImportOpt {
	return func(o *importOptions) error {
		o.compress = true
		return nil
	}
}

// dockerEntry is one image of a docker save archive's manifest.json.
type dockerEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// blob is an archive file written to an ingest and not yet committed.
type blob struct {
	name string // cleaned path in the archive
	ref  string
	size int64
	dgst digest.Digest // of the bytes read, verified against the name where it is one
	head []byte        // the first bytes, to tell compression
	w    content.Writer
	// exists: the store already had the digest, so nothing was written.
	exists bool
}

// importer holds the state of one ImportIndex.
type importer struct {
	store content.Store
	opts  importOptions
	refID string
	buf   []byte

	blobs  []*blob          // in archive order
	files  map[string]*blob // by cleaned name
	links  map[string]string
	others []string // regular files outside blobs/ (allowed only in docker archives)
	open   int

	layout   []byte
	index    []byte
	manifest []byte
	repos    []byte
}

// ImportIndex reads an archive from r into store and returns the
// descriptor of an index (itself written to store) listing the archive's
// images, named by the annotations io.containerd.image.name (the full
// name) and org.opencontainers.image.ref.name (the tag); ImageName reads
// them. Every blob is verified against its digest; a hostile archive
// (paths escaping, links, oversize entries, wrong digests, missing blobs)
// is refused without committing anything.
//
// An OCI image layout (oci-layout present) is read as such, its own
// index.json returned as the index (as containerd does, so its names and
// any other annotations reach the caller untouched); the manifests it
// lists must be in the archive (what they in turn reference need not be:
// an export for one platform carries the whole index but one platform's
// manifests). Otherwise a docker save archive
// (manifest.json) is read, each image made a Docker schema 2 manifest
// named by its RepoTags, normalised ("busybox:1" is
// "docker.io/library/busybox:1").
//
// Blobs are streamed into ingests as they come, so that index.json and
// manifest.json may be anywhere in the archive; nothing is committed until
// the whole archive has been read and checked. On error every ingest is
// aborted.
func ImportIndex(ctx context.Context, store content.Store, r io.Reader, opts ...ImportOpt) (_ ocispec.Descriptor, retErr error) {
	im := &importer{
		store: store,
		files: map[string]*blob{},
		links: map[string]string{},
		buf:   make([]byte, copyBufSize),
	}
	for _, o := range opts {
		if err := o(&im.opts); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return ocispec.Descriptor{}, err
	}
	// A ref of its own per import: two imports of the same archive at once
	// must not find each other's ingests locked.
	im.refID = "import-" + hex.EncodeToString(id[:])
	defer func() {
		if retErr != nil {
			im.abort(ctx)
		}
	}()

	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("read archive: %w", err)
		}
		if err := im.entry(ctx, tr, hdr); err != nil {
			return ocispec.Descriptor{}, err
		}
	}

	if im.layout != nil {
		return im.finishOCI(ctx)
	}
	if im.manifest != nil {
		return im.finishDocker(ctx)
	}
	if im.repos != nil {
		return ocispec.Descriptor{}, fmt.Errorf("docker save archive without manifest.json (docker before 1.10) is not supported: %w", errdefs.ErrNotImplemented)
	}
	return ocispec.Descriptor{}, fmt.Errorf("unrecognised archive: neither an OCI image layout (no %s) nor a docker save archive (no %s): %w",
		ocispec.ImageLayoutFile, dockerManifestFile, errdefs.ErrInvalidArgument)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}

// cleanName checks an entry's name and returns it cleaned: relative and
// staying inside the archive.
func cleanName(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") {
		return "", invalid("archive entry %q: absolute or empty path", name)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", invalid("archive entry %q: path leaves the archive", name)
		}
	}
	clean := path.Clean(name)
	if clean == "." {
		return "", invalid("archive entry %q: names no file", name)
	}
	return clean, nil
}

// blobDigest returns the digest a blobs/<alg>/<encoded> name is, "" for a
// name outside blobs/.
func blobDigest(clean string) (digest.Digest, error) {
	rest, ok := strings.CutPrefix(clean, ocispec.ImageBlobsDir+"/")
	if !ok {
		return "", nil
	}
	alg, enc, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(enc, "/") {
		return "", invalid("archive entry %q: not blobs/<algorithm>/<encoded digest>", clean)
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
	if err := d.Validate(); err != nil {
		return "", invalid("archive entry %q: not a digest: %v", clean, err)
	}
	return d, nil
}

// entry takes in one archive entry.
func (im *importer) entry(ctx context.Context, tr *tar.Reader, hdr *tar.Header) error {
	switch hdr.Typeflag {
	case tar.TypeDir, tar.TypeXGlobalHeader:
		return nil
	}
	clean, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeReg: // the reader turns the old TypeRegA into this
	case tar.TypeSymlink:
		return im.symlink(clean, hdr.Linkname)
	case tar.TypeLink:
		return invalid("archive entry %q: hard links are not allowed", hdr.Name)
	default:
		return invalid("archive entry %q: type %q is not a regular file", hdr.Name, hdr.Typeflag)
	}
	_, dupFile := im.files[clean]
	_, dupLink := im.links[clean]
	meta := im.metaPtr(clean)
	if dupFile || dupLink || meta != nil && *meta != nil {
		return invalid("archive entry %q: appears twice", hdr.Name)
	}

	if meta != nil {
		if hdr.Size > maxJSON {
			return invalid("archive entry %q: %d bytes is over the %d allowed", hdr.Name, hdr.Size, maxJSON)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return fmt.Errorf("read %s: %w", hdr.Name, err)
		}
		*meta = b
		return nil
	}

	expected, err := blobDigest(clean)
	if err != nil {
		return err
	}
	if expected == "" {
		im.others = append(im.others, clean)
		expected = dockerConfigDigest(clean)
	}
	if len(im.files) >= maxEntries {
		return invalid("archive has over %d files", maxEntries)
	}
	b, err := im.write(ctx, tr, clean, hdr.Size, expected)
	if err != nil {
		return err
	}
	im.blobs = append(im.blobs, b)
	im.files[clean] = b
	return nil
}

// metaPtr returns where the metadata file clean is kept, nil if clean is
// not one.
func (im *importer) metaPtr(clean string) *[]byte {
	switch clean {
	case ocispec.ImageLayoutFile:
		return &im.layout
	case ocispec.ImageIndexFile:
		return &im.index
	case dockerManifestFile:
		return &im.manifest
	case dockerReposFile:
		return &im.repos
	}
	return nil
}

// dockerConfigDigest returns the digest a legacy docker save config name
// ("<sha256 hex>.json" at the root) claims, "" for other names.
func dockerConfigDigest(clean string) digest.Digest {
	enc, ok := strings.CutSuffix(clean, ".json")
	if !ok || strings.Contains(enc, "/") {
		return ""
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, enc)
	if d.Validate() != nil {
		return ""
	}
	return d
}

// symlink records a link. Links are only aliases between archive files
// (nothing here touches a filesystem), used by old docker save archives
// for layers shared between images; under blobs/ one could only make a
// name lie about its content, so it is refused there.
func (im *importer) symlink(clean, target string) error {
	if _, err := blobDigest(clean); err != nil || strings.HasPrefix(clean, ocispec.ImageBlobsDir+"/") {
		return invalid("archive entry %q: symbolic link under %s/ is not allowed", clean, ocispec.ImageBlobsDir)
	}
	if target == "" || strings.HasPrefix(target, "/") {
		return invalid("archive entry %q: symbolic link to absolute path %q", clean, target)
	}
	resolved := path.Join(path.Dir(clean), target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return invalid("archive entry %q: symbolic link to %q leaves the archive", clean, target)
	}
	if len(im.links) >= maxEntries {
		return invalid("archive has over %d links", maxEntries)
	}
	im.links[clean] = resolved
	return nil
}

// write streams one file of the archive into an ingest, checking it
// against expected if set. The ingest is left uncommitted.
func (im *importer) write(ctx context.Context, r io.Reader, clean string, size int64, expected digest.Digest) (*blob, error) {
	b := &blob{name: clean, size: size, ref: im.refID + "-" + clean}
	if size < 0 {
		return nil, invalid("archive entry %q: negative size", clean)
	}
	desc := ocispec.Descriptor{Digest: expected, Size: size}
	w, err := im.store.Writer(ctx, content.WithRef(b.ref), content.WithDescriptor(desc))
	switch {
	case errdefs.IsAlreadyExists(err):
		// The store has it: read past it, still checking that the archive
		// is what it claims.
		b.exists = true
		d, n, head, err := im.copy(ctx, io.Discard, r, expected.Algorithm())
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", clean, err)
		}
		b.dgst, b.head = d, head
		if err := check(clean, size, expected, n, d); err != nil {
			return nil, err
		}
		return b, nil
	case err != nil:
		return nil, fmt.Errorf("open ingest for %s: %w", clean, err)
	}
	// Until it is tracked (returned), the ingest is this function's to
	// drop.
	drop := func() {
		w.Close()
		if aerr := im.store.Abort(context.WithoutCancel(ctx), b.ref); aerr != nil && !errdefs.IsNotFound(aerr) {
			log.G(ctx).WithError(aerr).WithField("ref", b.ref).Warn("abort import ingest")
		}
	}
	st, err := w.Status()
	if err != nil {
		drop()
		return nil, fmt.Errorf("import %s: %w", clean, err)
	}
	switch {
	case st.Offset == size && size > 0 && expected != "":
		// Another namespace has the blob: the ingest shares it and starts
		// out whole, and its commit records it in this one. Writing would
		// append to it; read past the archive's copy instead, still
		// checking it.
		d, n, head, err := im.copy(ctx, io.Discard, r, expected.Algorithm())
		if err != nil {
			drop()
			return nil, fmt.Errorf("read %s: %w", clean, err)
		}
		b.dgst, b.head = d, head
		if err := check(clean, size, expected, n, d); err != nil {
			drop()
			return nil, err
		}
	default:
		if st.Offset > 0 {
			// Left by an earlier try under this ref: start over, since
			// the archive is read once and cannot be skipped back into.
			if err := w.Truncate(0); err != nil {
				drop()
				return nil, fmt.Errorf("import %s: %w", clean, err)
			}
		}
		_, n, head, err := im.copy(ctx, w, r, "")
		if err != nil {
			drop()
			return nil, fmt.Errorf("import %s: %w", clean, err)
		}
		b.dgst, b.head = w.Digest(), head
		if err := check(clean, size, expected, n, b.dgst); err != nil {
			drop()
			return nil, err
		}
	}
	if im.open >= maxOpenWriters {
		// Keep the ingest, free the file: it is resumed at commit.
		if err := w.Close(); err != nil {
			drop()
			return nil, fmt.Errorf("import %s: %w", clean, err)
		}
		return b, nil
	}
	b.w = w
	im.open++
	// Tracked from here on, for commit or abort.
	return b, nil
}

// copy copies r to w through the importer's buffer, in writes as large as
// the buffer. With alg set it also returns the digest of what it copied
// (for writers that do not hash). It returns the first bytes as head.
func (im *importer) copy(ctx context.Context, w io.Writer, r io.Reader, alg digest.Algorithm) (digest.Digest, int64, []byte, error) {
	var digester digest.Digester
	if alg != "" {
		digester = alg.Digester()
	}
	var (
		n    int64
		head []byte
	)
	for {
		if err := ctx.Err(); err != nil {
			return "", n, nil, err
		}
		m, err := io.ReadFull(r, im.buf)
		if m > 0 {
			if head == nil {
				head = bytes.Clone(im.buf[:min(m, 8)])
			}
			if digester != nil {
				digester.Hash().Write(im.buf[:m])
			}
			if _, werr := w.Write(im.buf[:m]); werr != nil {
				return "", n, nil, werr
			}
			n += int64(m)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return "", n, nil, err
		}
	}
	if digester != nil {
		return digester.Digest(), n, head, nil
	}
	return "", n, head, nil
}

// check compares what was read of an entry with what it claims.
func check(name string, size int64, expected digest.Digest, n int64, got digest.Digest) error {
	if n != size {
		return invalid("archive entry %q: truncated: %d of %d bytes", name, n, size)
	}
	if expected != "" && got != expected {
		return invalid("archive entry %q: content has digest %s, not the %s its name claims", name, got, expected)
	}
	return nil
}

// abort drops every ingest the import started.
func (im *importer) abort(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	for _, b := range im.blobs {
		if b.exists {
			continue
		}
		if b.w != nil {
			b.w.Close()
			b.w = nil
		}
		if err := im.store.Abort(ctx, b.ref); err != nil && !errdefs.IsNotFound(err) {
			log.G(ctx).WithError(err).WithField("ref", b.ref).Warn("abort import ingest")
		}
	}
}

// commit makes b a blob.
func (im *importer) commit(ctx context.Context, b *blob) error {
	if b.exists {
		return nil
	}
	w := b.w
	if w == nil {
		var err error
		w, err = im.store.Writer(ctx, content.WithRef(b.ref), content.WithDescriptor(ocispec.Descriptor{Digest: b.dgst, Size: b.size}))
		if errdefs.IsAlreadyExists(err) {
			b.exists = true
			return im.store.Abort(ctx, b.ref)
		}
		if err != nil {
			return fmt.Errorf("resume ingest of %s: %w", b.name, err)
		}
	}
	err := w.Commit(ctx, b.size, b.dgst)
	w.Close()
	b.w = nil
	if errdefs.IsAlreadyExists(err) {
		// Committed meanwhile by someone else: the same bytes.
		b.exists = true
		if aerr := im.store.Abort(ctx, b.ref); aerr != nil && !errdefs.IsNotFound(aerr) {
			return aerr
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("commit %s: %w", b.name, err)
	}
	b.exists = true
	return nil
}

// commitAll commits bs in order; the ones not given are aborted by
// dropUnused or, on error, by abort.
func (im *importer) commitAll(ctx context.Context, bs []*blob) error {
	for _, b := range bs {
		if err := im.commit(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// resolve follows links from name to a regular file of the archive.
func (im *importer) resolve(name string) (*blob, error) {
	clean, err := cleanName(name)
	if err != nil {
		return nil, err
	}
	for range maxLinkDepth {
		if b, ok := im.files[clean]; ok {
			return b, nil
		}
		target, ok := im.links[clean]
		if !ok {
			return nil, invalid("%q is not in the archive", name)
		}
		clean = target
	}
	return nil, invalid("%q: over %d symbolic links deep", name, maxLinkDepth)
}

// finishOCI checks and commits an OCI image layout.
func (im *importer) finishOCI(ctx context.Context) (ocispec.Descriptor, error) {
	var layout ocispec.ImageLayout
	if err := json.Unmarshal(im.layout, &layout); err != nil {
		return ocispec.Descriptor{}, invalid("%s: %v", ocispec.ImageLayoutFile, err)
	}
	if layout.Version != ocispec.ImageLayoutVersion {
		return ocispec.Descriptor{}, fmt.Errorf("%s: layout version %q is not the %q supported: %w", ocispec.ImageLayoutFile, layout.Version, ocispec.ImageLayoutVersion, errdefs.ErrNotImplemented)
	}
	if len(im.others) > 0 {
		return ocispec.Descriptor{}, invalid("OCI image layout: entry %q is outside %s/", im.others[0], ocispec.ImageBlobsDir)
	}
	if len(im.links) > 0 {
		first := slices.Min(slices.Collect(maps.Keys(im.links)))
		return ocispec.Descriptor{}, invalid("OCI image layout: entry %q is a symbolic link", first)
	}
	if im.index == nil {
		return ocispec.Descriptor{}, invalid("OCI image layout without %s", ocispec.ImageIndexFile)
	}
	var idx struct {
		ocispec.Index
		Config json.RawMessage `json:"config"`
		Layers json.RawMessage `json:"layers"`
	}
	if err := json.Unmarshal(im.index, &idx); err != nil {
		return ocispec.Descriptor{}, invalid("%s: %v", ocispec.ImageIndexFile, err)
	}
	if (idx.MediaType != "" && idx.MediaType != ocispec.MediaTypeImageIndex) || idx.Config != nil || idx.Layers != nil {
		return ocispec.Descriptor{}, invalid("%s is not an image index", ocispec.ImageIndexFile)
	}
	for _, m := range idx.Manifests {
		if err := m.Digest.Validate(); err != nil {
			return ocispec.Descriptor{}, invalid("%s: manifest digest %q: %v", ocispec.ImageIndexFile, m.Digest, err)
		}
		b, ok := im.files[path.Join(ocispec.ImageBlobsDir, m.Digest.Algorithm().String(), m.Digest.Encoded())]
		if !ok {
			return ocispec.Descriptor{}, invalid("%s names %s %s, which the archive lacks", ocispec.ImageIndexFile, m.MediaType, m.Digest)
		}
		if b.size != m.Size {
			return ocispec.Descriptor{}, invalid("%s says %s is %d bytes; the archive's is %d", ocispec.ImageIndexFile, m.Digest, m.Size, b.size)
		}
	}

	if err := im.commitAll(ctx, im.blobs); err != nil {
		return ocispec.Descriptor{}, err
	}
	return im.writeJSON(ctx, im.index, ocispec.MediaTypeImageIndex)
}

// finishDocker checks a docker save archive, commits the files its images
// use and writes a manifest per image and an index naming them.
func (im *importer) finishDocker(ctx context.Context) (ocispec.Descriptor, error) {
	var entries []dockerEntry
	if err := json.Unmarshal(im.manifest, &entries); err != nil {
		return ocispec.Descriptor{}, invalid("%s: %v", dockerManifestFile, err)
	}
	if len(entries) == 0 {
		return ocispec.Descriptor{}, invalid("%s lists no images", dockerManifestFile)
	}
	if len(entries) > maxEntries {
		// Each becomes a manifest written to the store.
		return ocispec.Descriptor{}, invalid("%s lists over %d images", dockerManifestFile, maxEntries)
	}
	repoNames, err := im.repositories()
	if err != nil {
		return ocispec.Descriptor{}, err
	}

	// Check everything before committing anything.
	type image struct {
		config *blob
		layers []*blob
		names  []string
	}
	imgs := make([]image, len(entries))
	var used []*blob
	seen := map[*blob]bool{}
	use := func(b *blob) {
		if !seen[b] {
			seen[b] = true
			used = append(used, b)
		}
	}
	for i, e := range entries {
		cfg, err := im.resolve(e.Config)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("%s: image %d config: %w", dockerManifestFile, i, err)
		}
		if cfg.size > maxJSON {
			return ocispec.Descriptor{}, invalid("%s: image %d config %q: %d bytes is over the %d allowed", dockerManifestFile, i, e.Config, cfg.size, maxJSON)
		}
		use(cfg)
		img := image{config: cfg}
		for _, l := range e.Layers {
			b, err := im.resolve(l)
			if err != nil {
				return ocispec.Descriptor{}, fmt.Errorf("%s: image %d layer: %w", dockerManifestFile, i, err)
			}
			use(b)
			img.layers = append(img.layers, b)
		}
		tags := e.RepoTags
		if len(tags) == 0 && len(e.Layers) > 0 {
			// Old archives name images in repositories, by the directory
			// of their top layer.
			tags = repoNames[path.Dir(path.Clean(e.Layers[len(e.Layers)-1]))]
		}
		for _, t := range tags {
			name, err := normalizeName(t)
			if err != nil {
				return ocispec.Descriptor{}, fmt.Errorf("%s: image %d: %w", dockerManifestFile, i, err)
			}
			img.names = append(img.names, name)
		}
		imgs[i] = img
	}

	if err := im.commitAll(ctx, used); err != nil {
		return ocispec.Descriptor{}, err
	}
	// The rest (legacy json and VERSION files) are no part of any image.
	im.dropUnused(ctx, seen)

	idx := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
	}
	for i, img := range imgs {
		mfst := ocispec.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: images.MediaTypeDockerSchema2Manifest,
			Config: ocispec.Descriptor{
				MediaType: images.MediaTypeDockerSchema2Config,
				Digest:    img.config.dgst,
				Size:      img.config.size,
			},
			Layers: make([]ocispec.Descriptor, 0, len(img.layers)),
		}
		for _, l := range img.layers {
			desc, err := im.layerDesc(ctx, l)
			if err != nil {
				return ocispec.Descriptor{}, err
			}
			mfst.Layers = append(mfst.Layers, desc)
		}
		p, err := json.Marshal(mfst)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		desc, err := im.writeJSON(ctx, p, mfst.MediaType)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		platform, err := images.ConfigPlatform(ctx, im.store, mfst.Config)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("%s: image %d config: %w", dockerManifestFile, i, err)
		}
		if platform.OS != "" && platform.Architecture != "" {
			desc.Platform = &platform
		}
		if len(img.names) == 0 {
			idx.Manifests = append(idx.Manifests, desc)
		}
		for _, name := range img.names {
			d := desc
			d.Annotations = nameAnnotations(name, nil)
			idx.Manifests = append(idx.Manifests, d)
		}
	}
	p, err := json.Marshal(idx)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return im.writeJSON(ctx, p, ocispec.MediaTypeImageIndex)
}

// repositories reads the legacy repositories file: repository → tag →
// top layer ID, returned as layer ID → names.
func (im *importer) repositories() (map[string][]string, error) {
	if im.repos == nil {
		return nil, nil
	}
	var repos map[string]map[string]string
	if err := json.Unmarshal(im.repos, &repos); err != nil {
		return nil, invalid("%s: %v", dockerReposFile, err)
	}
	names := map[string][]string{}
	for repo, tags := range repos {
		for tag, id := range tags {
			names[id] = append(names[id], repo+":"+tag)
		}
	}
	for _, ns := range names {
		// Map order is random; the index should not be.
		slices.Sort(ns)
	}
	return names, nil
}

// dropUnused aborts the ingests of files no image uses.
func (im *importer) dropUnused(ctx context.Context, used map[*blob]bool) {
	for _, b := range im.blobs {
		if used[b] || b.exists {
			continue
		}
		if b.w != nil {
			b.w.Close()
			b.w = nil
		}
		if err := im.store.Abort(ctx, b.ref); err != nil && !errdefs.IsNotFound(err) {
			log.G(ctx).WithError(err).WithField("ref", b.ref).Warn("abort import ingest")
		}
		b.exists = true // nothing left to abort
	}
}

// layerDesc describes a docker archive's layer, its media type told by
// its first bytes; with the compress option an uncompressed one is
// gzipped into a blob of its own.
func (im *importer) layerDesc(ctx context.Context, l *blob) (ocispec.Descriptor, error) {
	desc := ocispec.Descriptor{Digest: l.dgst, Size: l.size}
	switch {
	case bytes.HasPrefix(l.head, []byte{0x1f, 0x8b, 0x08}):
		desc.MediaType = images.MediaTypeDockerSchema2LayerGzip
	case bytes.HasPrefix(l.head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		desc.MediaType = ocispec.MediaTypeImageLayerZstd
	case im.opts.compress:
		return im.compressLayer(ctx, desc)
	default:
		desc.MediaType = images.MediaTypeDockerSchema2Layer
	}
	return desc, nil
}

// writeJSON commits p, a document of media type mt.
func (im *importer) writeJSON(ctx context.Context, p []byte, mt string) (ocispec.Descriptor, error) {
	desc := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(p), Size: int64(len(p))}
	if err := content.WriteBlob(ctx, im.store, im.refID+"-"+desc.Digest.String(), bytes.NewReader(p), desc); err != nil {
		return ocispec.Descriptor{}, err
	}
	return desc, nil
}

// compressLayer gzips the uncompressed layer desc into a blob labelled
// with desc's digest as its uncompressed one, and describes that blob.
func (im *importer) compressLayer(ctx context.Context, desc ocispec.Descriptor) (_ ocispec.Descriptor, retErr error) {
	ra, err := im.store.ReaderAt(ctx, desc)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer ra.Close()
	ref := im.refID + "-gzip-" + desc.Digest.String()
	w, err := im.store.Writer(ctx, content.WithRef(ref))
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("compress %s: %w", desc.Digest, err)
	}
	defer func() {
		w.Close()
		if retErr != nil {
			im.store.Abort(context.WithoutCancel(ctx), ref)
		}
	}()
	bw := bufio.NewWriterSize(w, copyBufSize)
	zw := gzip.NewWriter(bw)
	if _, err := io.CopyBuffer(zw, content.NewReader(ra), im.buf); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("compress %s: %w", desc.Digest, err)
	}
	if err := zw.Close(); err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := bw.Flush(); err != nil {
		return ocispec.Descriptor{}, err
	}
	st, err := w.Status()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	out := ocispec.Descriptor{MediaType: images.MediaTypeDockerSchema2LayerGzip, Digest: w.Digest(), Size: st.Offset}
	labels := map[string]string{images.LabelUncompressed: desc.Digest.String()}
	if err := w.Commit(ctx, out.Size, out.Digest, content.WithLabels(labels)); err != nil && !errdefs.IsAlreadyExists(err) {
		return ocispec.Descriptor{}, fmt.Errorf("commit compressed %s: %w", desc.Digest, err)
	}
	return out, nil
}
