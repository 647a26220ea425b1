package images

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	digest "github.com/opencontainers/go-digest"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/reference/docker"
)

// cache is the CRI's view of the image store: one Image per config
// digest, with every record name pointing at it. It is what ImageStatus
// and ListImages answer from, so they never walk content; the service
// keeps it in step with the records it writes (and Update with those
// others write).
type cache struct {
	mu sync.RWMutex
	// refs maps a record name to the id (config digest) it points at.
	refs map[string]string
	// images by id.
	images map[string]*cached
}

type cached struct {
	Image
	// pinned are the names of the image whose records carry the pinned
	// label; the image is pinned while any does.
	pinned map[string]bool
}

func newCache() *cache {
	return &cache{refs: map[string]string{}, images: map[string]*cached{}}
}

// update records that name now points at img, or, with img nil, that
// the record named name is gone.
func (c *cache) update(name string, img *Image, pinned bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.refs[name]; ok && (img == nil || old != img.ID) {
		c.drop(old, name)
		delete(c.refs, name)
	}
	if img == nil {
		return
	}
	c.refs[name] = img.ID
	e, ok := c.images[img.ID]
	if !ok {
		e = &cached{Image: *img, pinned: map[string]bool{}}
		e.References = nil
		c.images[img.ID] = e
	}
	if !slices.Contains(e.References, name) {
		e.References = append(e.References, name)
		sortReferences(e.References)
	}
	if pinned {
		e.pinned[name] = true
	} else {
		delete(e.pinned, name)
	}
	e.Pinned = len(e.pinned) > 0
}

// drop removes name from image id, and the image once it has no name.
func (c *cache) drop(id, name string) {
	e, ok := c.images[id]
	if !ok {
		return
	}
	e.References = slices.DeleteFunc(e.References, func(r string) bool { return r == name })
	delete(e.pinned, name)
	e.Pinned = len(e.pinned) > 0
	if len(e.References) == 0 {
		delete(c.images, id)
	}
}

// resolve returns the id a record name points at.
func (c *cache) resolve(name string) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	id, ok := c.refs[name]
	return id, ok
}

// get returns the image whose id is id, or starts with it: a full
// digest, or a prefix of its hex with or without "sha256:", as
// containerd's CRI accepts (crictl prints ids cut short). A prefix
// matching more than one image is refused.
func (c *cache) get(id string) (Image, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e, ok := c.images[id]; ok {
		return e.copy(), nil
	}
	prefix := id
	if alg, hex, ok := strings.Cut(id, ":"); ok {
		if alg != string(digest.SHA256) {
			return Image{}, fmt.Errorf("image %q: %w", id, errdefs.ErrNotFound)
		}
		prefix = hex
	}
	if prefix == "" || !isLowerHex(prefix) {
		return Image{}, fmt.Errorf("image %q: %w", id, errdefs.ErrNotFound)
	}
	prefix = string(digest.SHA256) + ":" + prefix
	var found *cached
	for key, e := range c.images {
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		if found != nil {
			return Image{}, fmt.Errorf("image id prefix %q is ambiguous: it matches %s and %s: %w", id, found.ID, e.ID, errdefs.ErrInvalidArgument)
		}
		found = e
	}
	if found == nil {
		return Image{}, fmt.Errorf("image %q: %w", id, errdefs.ErrNotFound)
	}
	return found.copy(), nil
}

// list returns every image, ordered by id for stable answers.
func (c *cache) list() []Image {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Image, 0, len(c.images))
	for _, e := range c.images {
		out = append(out, e.copy())
	}
	slices.SortFunc(out, func(a, b Image) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// copy is the image with its own References, safe to hand out.
func (e *cached) copy() Image {
	img := e.Image
	img.References = slices.Clone(e.References)
	return img
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// sortReferences orders names as containerd's CRI does (distribution's
// reference.Sort): the most informative first, tags before digest
// references before bare ids, then by name.
func sortReferences(refs []string) {
	rank := func(s string) int {
		if _, err := digest.Parse(s); err == nil {
			return 4
		}
		r, err := docker.Parse(s)
		switch {
		case err != nil:
			return 5
		case r.Tag() != "" && r.Digest() != "":
			return 0
		case r.Tag() != "":
			return 1
		case r.Digest() != "":
			return 2
		default:
			return 3
		}
	}
	slices.SortStableFunc(refs, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
}

// splitReferences parts an image's names into the CRI's repo_tags and
// repo_digests; the id name ("sha256:…") is neither.
func splitReferences(refs []string) (tags, digests []string) {
	for _, ref := range refs {
		if _, err := digest.Parse(ref); err == nil {
			continue
		}
		r, err := docker.Parse(ref)
		if err != nil {
			continue
		}
		switch {
		case r.Digest() != "":
			digests = append(digests, ref)
		case r.Tag() != "":
			tags = append(tags, ref)
		}
	}
	return tags, digests
}
