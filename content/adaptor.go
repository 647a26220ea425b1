package content

import (
	"strconv"
	"strings"

	"github.com/llitfkitfk/containerd/filters"
)

// AdaptInfo exposes info to filters: "digest", "size" and "labels.<key>".
// A label key may itself contain dots, so the rest of the fieldpath is
// joined back into one key.
func AdaptInfo(info Info) filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) == 0 {
			return "", false
		}
		switch fieldpath[0] {
		case "digest":
			return info.Digest.String(), true
		case "size":
			return strconv.FormatInt(info.Size, 10), true
		case "labels":
			if len(fieldpath) < 2 {
				return "", len(info.Labels) > 0
			}
			v, ok := info.Labels[strings.Join(fieldpath[1:], ".")]
			return v, ok
		}
		return "", false
	})
}
