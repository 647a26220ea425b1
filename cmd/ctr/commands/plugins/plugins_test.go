package plugins

import (
	"testing"

	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"

	introspectionapi "github.com/llitfkitfk/containerd/api/services/introspection/v1"
	"github.com/llitfkitfk/containerd/api/types"
)

func TestPlatformColumn(t *testing.T) {
	if got := platformColumn(nil); got != "-" {
		t.Errorf("no platforms = %q", got)
	}
	ps := []*types.Platform{
		{Os: "linux", Architecture: "arm64", Variant: "v8"},
		{Os: "linux", Architecture: "amd64"},
		{Os: "linux", Architecture: "amd64"},
		{Os: "linux", Architecture: "arm", Variant: "v7"},
	}
	// arm64/v8 is formatted as platforms.Format does, variant and all.
	if got, want := platformColumn(ps), "linux/amd64,linux/arm/v7,linux/arm64/v8"; got != want {
		t.Errorf("platformColumn = %q, want %q", got, want)
	}
}

func TestStatus(t *testing.T) {
	for want, p := range map[string]*introspectionapi.Plugin{
		"ok":    {},
		"skip":  {InitErr: &rpcstatus.Status{Message: "no btrfs here: skip plugin"}},
		"error": {InitErr: &rpcstatus.Status{Code: 2, Message: "boom"}},
	} {
		if got := status(p); got != want {
			t.Errorf("status of %v = %s, want %s", p.InitErr, got, want)
		}
	}
}
