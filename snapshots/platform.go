package snapshots

import (
	"runtime"
	"runtime/debug"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultPlatform is the platform this daemon runs images for, which
// snapshotters report through introspection: the OS and architecture the
// binary was built for, with the variant clients expect on ARM.
func DefaultPlatform() ocispec.Platform {
	return ocispec.Platform{
		OS:           runtime.GOOS,
		Architecture: runtime.GOARCH,
		Variant:      cpuVariant(),
	}
}

// cpuVariant follows the OCI convention: "v8" for arm64, and for 32-bit
// arm the GOARM level the binary was built with, which bounds the images it
// can run.
func cpuVariant() string {
	switch runtime.GOARCH {
	case "arm64":
		return "v8"
	case "arm":
		level := "7" // the toolchain's default
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "GOARM" && s.Value != "" {
					level, _, _ = strings.Cut(s.Value, ",") // "7,softfloat"
				}
			}
		}
		return "v" + level
	}
	return ""
}
