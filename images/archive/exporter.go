package archive

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/containerd/platforms"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// record is one file of an exported archive: a blob copied from the
// store, or a document made here (data).
type record struct {
	name string
	desc ocispec.Descriptor // of a blob
	data []byte
	dir  bool
}

// dockerImage is an entry of Docker's manifest.json in the making.
type dockerImage struct {
	manifest ocispec.Descriptor
	names    []string
}

// exporter holds the state of one Export.
type exporter struct {
	store   content.Provider
	opts    exportOptions
	records map[string]record
	algs    map[digest.Algorithm]bool
	// docker lists, in the order first met, the manifests manifest.json
	// describes; dockerBy finds them by digest.
	docker   []*dockerImage
	dockerBy map[digest.Digest]*dockerImage
}

// Export writes the selected images and their content from store to w as
// a tar archive in the OCI image layout: oci-layout, index.json listing
// the images with their names as annotations, blobs/<alg>/<encoded>, and
// (unless WithSkipDockerManifest) Docker's manifest.json naming one
// manifest per image, for `docker load`.
//
// Of an index, only the manifests for the platform (WithPlatform; by
// default the host's, strictly) are exported, unless WithAllPlatforms;
// the index itself is always exported whole. Every blob is checked to be
// in the store before anything is written, and copied straight from the
// store to w, its digest verified as it goes. The output is the same for
// the same input: files in name order, no times.
func Export(ctx context.Context, store content.Provider, w io.Writer, opts ...ExportOpt) error {
	ex := &exporter{
		store:    store,
		records:  map[string]record{},
		algs:     map[digest.Algorithm]bool{},
		dockerBy: map[digest.Digest]*dockerImage{},
	}
	for _, o := range opts {
		if err := o(ctx, &ex.opts); err != nil {
			return err
		}
	}
	if ex.opts.platform == nil {
		ex.opts.platform = platforms.DefaultStrict()
	}

	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return err
	}
	ex.add(record{name: ocispec.ImageLayoutFile, data: layout})

	top := make([]ocispec.Descriptor, 0, len(ex.opts.manifests))
	for _, desc := range ex.opts.manifests {
		if err := desc.Digest.Validate(); err != nil {
			return fmt.Errorf("export %s: %w", desc.Digest, errors.Join(err, errdefs.ErrInvalidArgument))
		}
		switch {
		case images.IsManifestType(desc.MediaType):
			if err := ex.walk(ctx, desc); err != nil {
				return err
			}
			ex.dockerName(desc, desc.Annotations[AnnotationImageName])
		case images.IsIndexType(desc.MediaType):
			if err := ex.index(ctx, desc); err != nil {
				return err
			}
		default:
			return fmt.Errorf("export %s: %q is not a manifest or index: %w", desc.Digest, desc.MediaType, errdefs.ErrInvalidArgument)
		}
		top = append(top, ex.withSourceLabels(ctx, desc))
	}

	index, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: top,
	})
	if err != nil {
		return err
	}
	ex.add(record{name: ocispec.ImageIndexFile, data: index})

	if !ex.opts.skipDockerManifest && len(ex.docker) > 0 {
		p, err := ex.dockerManifest(ctx)
		if err != nil {
			return err
		}
		ex.add(record{name: dockerManifestFile, data: p})
	}
	if len(ex.algs) > 0 {
		ex.add(record{name: ocispec.ImageBlobsDir + "/", dir: true})
		for alg := range ex.algs {
			ex.add(record{name: ocispec.ImageBlobsDir + "/" + alg.String() + "/", dir: true})
		}
	}
	return ex.write(ctx, w)
}

func (ex *exporter) add(r record) {
	ex.records[r.name] = r
}

func blobPath(d digest.Digest) string {
	return path.Join(ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded())
}

// addBlob adds desc's blob, checking that the store has it: a missing
// blob is found here, before a byte of the archive is written.
func (ex *exporter) addBlob(ctx context.Context, desc ocispec.Descriptor) error {
	if err := desc.Digest.Validate(); err != nil {
		return fmt.Errorf("export %s: %w", desc.Digest, errors.Join(err, errdefs.ErrInvalidArgument))
	}
	name := blobPath(desc.Digest)
	if _, ok := ex.records[name]; ok {
		return nil
	}
	ra, err := ex.store.ReaderAt(ctx, desc)
	if err != nil {
		return fmt.Errorf("export %s %s: %w", desc.MediaType, desc.Digest, err)
	}
	size := ra.Size()
	ra.Close()
	if desc.Size != size {
		return fmt.Errorf("export %s: descriptor says %d bytes, store has %d: %w", desc.Digest, desc.Size, size, errdefs.ErrFailedPrecondition)
	}
	ex.algs[desc.Digest.Algorithm()] = true
	ex.add(record{name: name, desc: desc})
	return nil
}

// exists reports whether the store has desc's blob.
func (ex *exporter) exists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	ra, err := ex.store.ReaderAt(ctx, desc)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	ra.Close()
	return true, nil
}

// walk adds desc and everything under it. With skipMissing, a manifest
// the store lacks is left out, and of one whose children are not all
// there only the manifest itself is exported.
func (ex *exporter) walk(ctx context.Context, desc ocispec.Descriptor) error {
	return images.Walk(ctx, images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if ex.opts.skipMissing && images.IsManifestType(desc.MediaType) {
			ok, err := ex.exists(ctx, desc)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, images.ErrSkipDesc
			}
		}
		if err := ex.addBlob(ctx, desc); err != nil {
			return nil, err
		}
		children, err := images.Children(ctx, ex.store, desc)
		if err != nil {
			return nil, err
		}
		if ex.opts.skipMissing && images.IsManifestType(desc.MediaType) {
			for _, ch := range children {
				ok, err := ex.exists(ctx, ch)
				if err != nil {
					return nil, err
				}
				if !ok {
					return nil, nil
				}
			}
		}
		return children, nil
	}), desc)
}

// index adds an image that is an index: the index whole, and the
// manifests for the platform (all, with allPlatforms). The best of those
// is the one Docker's manifest.json names.
func (ex *exporter) index(ctx context.Context, desc ocispec.Descriptor) error {
	if err := ex.addBlob(ctx, desc); err != nil {
		return err
	}
	children, err := images.Children(ctx, ex.store, desc)
	if err != nil {
		return err
	}
	var matched []ocispec.Descriptor
	for _, m := range children {
		match := m.Platform == nil || ex.opts.platform.Match(*m.Platform)
		if match {
			matched = append(matched, m)
		}
		if !match && !ex.opts.allPlatforms {
			continue
		}
		if err := ex.walk(ctx, m); err != nil {
			return err
		}
	}
	if len(matched) == 0 {
		if ex.opts.allPlatforms {
			return nil // exported, but nothing docker load could pick
		}
		return fmt.Errorf("export %s: no manifest for %s: %w", desc.Digest, images.PlatformString(ex.opts.platform), errdefs.ErrNotFound)
	}
	sort.SliceStable(matched, func(i, j int) bool {
		pi, pj := matched[i].Platform, matched[j].Platform
		if pi == nil {
			return false
		}
		if pj == nil {
			return true
		}
		return ex.opts.platform.Less(*pi, *pj)
	})
	for _, m := range matched {
		// The best that is a manifest and was exported (skipMissing may
		// have left it out).
		if _, ok := ex.records[blobPath(m.Digest)]; ok && images.IsManifestType(m.MediaType) {
			ex.dockerName(m, desc.Annotations[AnnotationImageName])
			break
		}
	}
	return nil
}

// dockerName records that manifest.json is to list m, under name if set.
func (ex *exporter) dockerName(m ocispec.Descriptor, name string) {
	d, ok := ex.dockerBy[m.Digest]
	if !ok {
		d = &dockerImage{manifest: m}
		ex.dockerBy[m.Digest] = d
		ex.docker = append(ex.docker, d)
	}
	if name != "" {
		d.names = append(d.names, name)
	}
}

// withSourceLabels copies the distribution source labels of desc's blob
// into its annotations, as containerd does, so that an importer can mount
// layers across repositories from where they came. Only a store that can
// say (an InfoProvider) gives them.
func (ex *exporter) withSourceLabels(ctx context.Context, desc ocispec.Descriptor) ocispec.Descriptor {
	ip, ok := ex.store.(content.InfoProvider)
	if !ok {
		return desc
	}
	info, err := ip.Info(ctx, desc.Digest)
	if err != nil {
		return desc
	}
	var a map[string]string
	for k, v := range info.Labels {
		if strings.HasPrefix(k, images.LabelDistributionSource) {
			if a == nil {
				a = make(map[string]string, len(desc.Annotations)+1)
				for k, v := range desc.Annotations {
					a[k] = v
				}
			}
			a[k] = v
		}
	}
	if a != nil {
		desc.Annotations = a
	}
	return desc
}

// dockerManifest makes Docker's manifest.json.
func (ex *exporter) dockerManifest(ctx context.Context) ([]byte, error) {
	entries := make([]dockerEntry, 0, len(ex.docker))
	for _, d := range ex.docker {
		var m ocispec.Manifest
		p, err := content.ReadBlob(ctx, ex.store, d.manifest)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(p, &m); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", d.manifest.Digest, err)
		}
		if _, ok := ex.records[blobPath(m.Config.Digest)]; !ok {
			continue // skipMissing left its content out: docker could not load it
		}
		e := dockerEntry{Config: blobPath(m.Config.Digest), RepoTags: []string{}, Layers: []string{}}
		for _, l := range m.Layers {
			e.Layers = append(e.Layers, blobPath(l.Digest))
		}
		for _, name := range d.names {
			f, err := familiarName(name)
			if err != nil {
				return nil, err
			}
			e.RepoTags = append(e.RepoTags, f)
		}
		entries = append(entries, e)
	}
	return json.Marshal(entries)
}

// write writes the records in name order.
func (ex *exporter) write(ctx context.Context, w io.Writer) error {
	names := make([]string, 0, len(ex.records))
	for name := range ex.records {
		names = append(names, name)
	}
	sort.Strings(names)

	tw := tar.NewWriter(w)
	buf := make([]byte, copyBufSize)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		r := ex.records[name]
		hdr := &tar.Header{Name: name, Mode: 0o444, Typeflag: tar.TypeReg}
		switch {
		case r.dir:
			hdr.Mode, hdr.Typeflag = 0o755, tar.TypeDir
		case r.data != nil:
			hdr.Size = int64(len(r.data))
			if name != ocispec.ImageLayoutFile {
				hdr.Mode = 0o644 // as containerd: oci-layout alone is read-only
			}
		default:
			hdr.Size = r.desc.Size
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		switch {
		case r.dir:
		case r.data != nil:
			if _, err := tw.Write(r.data); err != nil {
				return fmt.Errorf("write %s: %w", name, err)
			}
		default:
			if err := ex.copyBlob(ctx, tw, r.desc, buf); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

// copyBlob copies desc's blob to w, checking its digest.
func (ex *exporter) copyBlob(ctx context.Context, w io.Writer, desc ocispec.Descriptor, buf []byte) error {
	ra, err := ex.store.ReaderAt(ctx, desc)
	if err != nil {
		return fmt.Errorf("export %s: %w", desc.Digest, err)
	}
	defer ra.Close()
	digester := desc.Digest.Algorithm().Digester()
	n, err := io.CopyBuffer(io.MultiWriter(w, digester.Hash()), io.NewSectionReader(ra, 0, desc.Size), buf)
	if err != nil {
		return fmt.Errorf("export %s: %w", desc.Digest, err)
	}
	if n != desc.Size || digester.Digest() != desc.Digest {
		return fmt.Errorf("export %s: the store's blob is damaged (%d bytes, digest %s): %w", desc.Digest, n, digester.Digest(), errdefs.ErrFailedPrecondition)
	}
	return nil
}
