package images

import (
	gocontext "context"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/reference/docker"
	"github.com/llitfkitfk/containerd/transfer/image"
)

var tagCommand = cli.Command{
	Name:        "tag",
	Usage:       "Tag an image",
	ArgsUsage:   "[flags] <source_ref> <target_ref> [<target_ref>, ...]",
	Description: `Tag an image for use in containerd.`,
	Flags: []cli.Flag{
		cli.BoolFlag{Name: "force", Usage: "Force target_ref to be created, regardless if it already exists"},
		cli.BoolFlag{Name: "local", Usage: "Run tag locally rather than through transfer API"},
		cli.BoolFlag{Name: "skip-reference-check", Usage: "Skip the strict check for reference names"},
	},
	Action: func(context *cli.Context) error {
		ref := context.Args().First()
		if ref == "" {
			return errors.New("please provide an image reference to tag from")
		}
		if context.NArg() <= 1 {
			return errors.New("please provide an image reference to tag to")
		}
		targets := context.Args().Tail()
		if !context.Bool("skip-reference-check") {
			for _, t := range targets {
				if err := checkReference(t); err != nil {
					return fmt.Errorf("error parsing reference: %q is not a valid repository/tag %v", t, err)
				}
			}
		}

		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()

		useTransfer := !context.Bool("local")
		for _, target := range targets {
			if useTransfer {
				err := tagTransfer(ctx, c, ref, target, context.Bool("force"))
				if noTransferService(ctx, err) {
					useTransfer = false
					err = tagLocal(ctx, c, ref, target, context.Bool("force"))
				}
				if err != nil {
					return err
				}
			} else if err := tagLocal(ctx, c, ref, target, context.Bool("force")); err != nil {
				return err
			}
			fmt.Fprintln(commands.Stdout, target)
		}
		return nil
	},
}

// tagTransfer tags through the daemon's transfer service. The service
// replaces an existing target, which is --force; without it an existing
// target is an error, as it is for containerd's ctr with --local and for
// 1.6's.
func tagTransfer(ctx gocontext.Context, c *client.Client, ref, target string, force bool) error {
	if !force {
		if _, err := c.ImageService().Get(ctx, target); err == nil {
			return fmt.Errorf("image %q: %w", target, errdefs.ErrAlreadyExists)
		} else if !errdefs.IsNotFound(err) {
			return err
		}
	}
	return c.Transfer(ctx, image.NewStore(ref), image.NewStore(target))
}

// tagLocal records the source image under target through the image store.
func tagLocal(ctx gocontext.Context, c *client.Client, ref, target string, force bool) error {
	is := c.ImageService()
	img, err := is.Get(ctx, ref)
	if err != nil {
		return err
	}
	img.Name = target
	if _, err := is.Create(ctx, img); err != nil {
		if !errdefs.IsAlreadyExists(err) || !force {
			return err
		}
		if err := is.Delete(ctx, target); err != nil {
			return err
		}
		if _, err := is.Create(ctx, img); err != nil {
			return err
		}
	}
	return nil
}

// checkReference accepts what docker's ParseAnyReference does: an image
// reference, or a bare 64-hex image id.
func checkReference(s string) error {
	if len(s) == 64 && strings.Trim(s, "0123456789abcdef") == "" {
		return nil
	}
	_, err := docker.ParseNormalized(s)
	return err
}
