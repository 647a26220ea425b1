package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/images"
)

// WithImageConfig sets the process's args, env (merged over the spec's),
// working dir and user from the image's config.
func WithImageConfig(image Image) SpecOpts {
	return WithImageConfigArgs(image, nil)
}

// WithImageConfigArgs is WithImageConfig with args replacing the image's
// command (the entrypoint stays, as docker run does).
//
// The environment is the default PATH, overridden by the image's
// variables, overridden by those options before this one set. The working
// dir is the image's, or /. The user is the image's (looked up in the
// container's /etc/passwd and /etc/group), or root; either way the
// supplementary groups are those /etc/group gives the user.
func WithImageConfigArgs(image Image, args []string) SpecOpts {
	return func(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
		config, err := ReadImageConfig(ctx, image)
		if err != nil {
			return err
		}
		setProcess(s)
		env := MergeEnv([]string{DefaultPathEnv}, config.Env)
		s.Process.Env = MergeEnv(env, s.Process.Env)

		cmd := config.Cmd
		if len(args) > 0 {
			cmd = args
		}
		s.Process.Args = append(append([]string(nil), config.Entrypoint...), cmd...)
		s.Process.CommandLine = ""

		s.Process.Cwd = config.WorkingDir
		if s.Process.Cwd == "" {
			s.Process.Cwd = "/"
		}

		if config.User != "" {
			if err := WithUser(config.User)(ctx, client, c, s); err != nil {
				return fmt.Errorf("image user: %w", err)
			}
			return WithAdditionalGIDs(strconv.FormatUint(uint64(s.Process.User.UID), 10))(ctx, client, c, s)
		}
		// Root still gets the groups /etc/group lists it in.
		return WithAdditionalGIDs("root")(ctx, client, c, s)
	}
}

// ReadImageConfig reads the image's runtime config (entrypoint, cmd, env,
// user...) from its content store.
func ReadImageConfig(ctx context.Context, image Image) (ocispec.ImageConfig, error) {
	// An image that has read its config already (the client's) says it
	// without another trip to the content store.
	if s, ok := image.(interface {
		Spec(context.Context) (ocispec.Image, error)
	}); ok {
		img, err := s.Spec(ctx)
		if err != nil {
			return ocispec.ImageConfig{}, err
		}
		return img.Config, nil
	}
	desc, err := image.Config(ctx)
	if err != nil {
		return ocispec.ImageConfig{}, err
	}
	if !images.IsConfigType(desc.MediaType) {
		return ocispec.ImageConfig{}, fmt.Errorf("unknown image config media type %s", desc.MediaType)
	}
	p, err := content.ReadBlob(ctx, image.ContentStore(), desc)
	if err != nil {
		return ocispec.ImageConfig{}, fmt.Errorf("read image config: %w", err)
	}
	var img ocispec.Image
	if err := json.Unmarshal(p, &img); err != nil {
		return ocispec.ImageConfig{}, fmt.Errorf("decode image config %s: %w", desc.Digest, err)
	}
	return img.Config, nil
}
