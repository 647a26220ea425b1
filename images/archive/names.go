package archive

import (
	"strings"
)

// ImageName returns the name an imported index entry's annotations give
// its image, as containerd's import does: io.containerd.image.name, used
// only if cleanup (when set) leaves it as it is (a full name outside the
// wanted prefix is dropped, not rewritten); else
// org.opencontainers.image.ref.name passed through cleanup. "" for none.
func ImageName(annotations map[string]string, cleanup func(string) string) string {
	if name := annotations[AnnotationImageName]; name != "" {
		if cleanup != nil && cleanup(name) != name {
			return ""
		}
		return name
	}
	name := annotations[AnnotationRefName]
	if name != "" && cleanup != nil {
		name = cleanup(name)
	}
	return name
}

// FilterRefPrefix keeps the names under image: a tag alone gets image
// prepended ("1.0" is "<image>:1.0"); a full name elsewhere gives "".
func FilterRefPrefix(image string) func(string) string {
	return refTranslator(image, true)
}

// AddRefPrefix prepends image to a tag alone, leaving full names as they
// are.
func AddRefPrefix(image string) func(string) string {
	return refTranslator(image, false)
}

func refTranslator(image string, checkPrefix bool) func(string) string {
	return func(ref string) string {
		if image == "" {
			return ""
		}
		if strings.ContainsAny(ref, "/:@") {
			// A full name, not a tag.
			if checkPrefix && !hasImagePrefix(ref, image) {
				return ""
			}
			return ref
		}
		return image + ":" + ref
	}
}

// hasImagePrefix reports whether s is prefix or a name under it: the
// prefix must end at a separator, so that "docker.io/library/busy" is not
// a prefix of "docker.io/library/busybox".
func hasImagePrefix(s, prefix string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return false
	}
	return rest == "" || strings.ContainsRune("/:@", rune(rest[0]))
}
