package oci

import (
	"context"
	"errors"
	"testing"

	"github.com/llitfkitfk/containerd/content"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// specImage is an image that knows its config already, with no content
// store behind it.
type specImage struct{ cfg ocispec.ImageConfig }

func (specImage) Config(context.Context) (ocispec.Descriptor, error) {
	return ocispec.Descriptor{}, errors.New("config descriptor asked for")
}
func (specImage) ContentStore() content.Store { return nil }
func (i specImage) Spec(context.Context) (ocispec.Image, error) {
	return ocispec.Image{Config: i.cfg}, nil
}

// An image that has read its config (the client's) is not read again.
func TestReadImageConfigFromSpec(t *testing.T) {
	want := ocispec.ImageConfig{Env: []string{"A=1"}, Cmd: []string{"sh"}, User: "nobody"}
	got, err := ReadImageConfig(context.Background(), specImage{want})
	if err != nil {
		t.Fatal(err)
	}
	if got.User != want.User || len(got.Env) != 1 || got.Env[0] != "A=1" || len(got.Cmd) != 1 {
		t.Errorf("config %+v, want %+v", got, want)
	}
}
