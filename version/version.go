// Package version holds the daemon's version, set at build time by the
// Makefile through -ldflags "-X".
package version

var (
	// Package is the module the daemon is built from.
	Package = "github.com/llitfkitfk/containerd"
	// Version is the release, or the output of git describe.
	Version = "1.0.0+unknown"
	// Revision is the git commit the binary was built from.
	Revision = ""
)
