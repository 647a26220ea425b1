package images

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/log"
)

// newTabWriter is the table writer of ctr's listings, with containerd's
// settings, so that columns line up the same.
func newTabWriter() *tabwriter.Writer {
	return tabwriter.NewWriter(commands.Stdout, 1, 8, 1, ' ', 0)
}

var listCommand = cli.Command{
	Name:        "list",
	Aliases:     []string{"ls"},
	Usage:       "list images known to containerd",
	ArgsUsage:   "[flags] [<filter>, ...]",
	Description: "list images registered with containerd",
	Flags: []cli.Flag{
		cli.BoolFlag{
			Name:  "quiet, q",
			Usage: "print only the image refs",
		},
	},
	Action: func(context *cli.Context) error {
		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()
		imgs, err := c.ImageService().List(ctx, context.Args()...)
		if err != nil {
			return fmt.Errorf("failed to list images: %w", err)
		}
		if context.Bool("quiet") {
			for _, img := range imgs {
				fmt.Fprintln(commands.Stdout, img.Name)
			}
			return nil
		}
		cs := c.ContentStore()
		tw := newTabWriter()
		fmt.Fprintln(tw, "REF\tTYPE\tDIGEST\tSIZE\tPLATFORMS\tLABELS\t")
		for _, img := range imgs {
			// A listing shows what it can: a broken image is logged, not
			// the end of the list.
			size, err := client.NewImage(c, img).Size(ctx)
			if err != nil {
				log.GetLogger(ctx).WithError(err).Errorf("failed calculating size for image %s", img.Name)
			}
			fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%s\t\n",
				img.Name,
				img.Target.MediaType,
				img.Target.Digest,
				commands.HumanBytes(size),
				platformsColumn(ctx, cs, img),
				labelsColumn(img.Labels))
		}
		return tw.Flush()
	},
}

// platformsColumn is the image's platforms, sorted and distinct, or "-".
func platformsColumn(ctx context.Context, cs content.Store, img images.Image) string {
	ps, err := images.Platforms(ctx, cs, img.Target)
	if err != nil {
		log.GetLogger(ctx).WithError(err).Errorf("failed resolving platform for image %s", img.Name)
		return "-"
	}
	var names []string
	for _, p := range ps {
		if s := platforms.Format(p); !slices.Contains(names, s) {
			names = append(names, s)
		}
	}
	if len(names) == 0 {
		return "-"
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// labelsColumn is the labels as sorted k=v pairs, or "-".
func labelsColumn(labels map[string]string) string {
	if len(labels) == 0 {
		return "-"
	}
	pairs := make([]string, 0, len(labels))
	for k, v := range labels {
		pairs = append(pairs, k+"="+v)
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}

var setLabelsCommand = cli.Command{
	Name:        "label",
	Usage:       "set and clear labels for an image",
	ArgsUsage:   "[flags] <name> [<key>=<value>, ...]",
	Description: "set and clear labels for an image",
	Flags: []cli.Flag{
		cli.BoolFlag{
			Name:  "replace-all, r",
			Usage: "replace all labels",
		},
	},
	Action: func(context *cli.Context) error {
		name := context.Args().First()
		if name == "" {
			return errors.New("please specify an image")
		}
		labels := commands.LabelArgs(context.Args().Tail())
		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()

		var fieldpaths []string
		if context.Bool("replace-all") {
			fieldpaths = []string{"labels"}
		} else {
			for k := range labels {
				fieldpaths = append(fieldpaths, "labels."+k)
			}
		}
		if len(fieldpaths) == 0 {
			// Nothing to change: an update with no field paths would
			// replace the whole record.
			img, err := c.ImageService().Get(ctx, name)
			if err != nil {
				return err
			}
			fmt.Fprintln(commands.Stdout, labelsList(img.Labels))
			return nil
		}
		updated, err := c.ImageService().Update(ctx, images.Image{Name: name, Labels: labels}, fieldpaths...)
		if err != nil {
			return err
		}
		fmt.Fprintln(commands.Stdout, labelsList(updated.Labels))
		return nil
	},
}

// labelsList is the labels as sorted k=v pairs joined by commas.
func labelsList(labels map[string]string) string {
	if len(labels) == 0 {
		return ""
	}
	return labelsColumn(labels)
}

var checkCommand = cli.Command{
	Name:        "check",
	Usage:       "check existing images to ensure all content is available locally",
	ArgsUsage:   "[flags] [<filter>, ...]",
	Description: "check existing images to ensure all content is available locally",
	Flags: []cli.Flag{
		cli.BoolFlag{
			Name:  "quiet, q",
			Usage: "print only the ready image refs (fully downloaded and unpacked)",
		},
		commands.SnapshotterFlag,
	},
	Action: func(context *cli.Context) error {
		quiet := context.Bool("quiet")
		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()
		imgs, err := c.ListImages(ctx, context.Args()...)
		if err != nil {
			return fmt.Errorf("failed listing images: %w", err)
		}
		if len(imgs) == 0 {
			return nil
		}
		cs := c.ContentStore()
		tw := newTabWriter()
		if !quiet {
			fmt.Fprintln(tw, "REF\tTYPE\tDIGEST\tSTATUS\tSIZE\tUNPACKED\t")
		}
		// Every image is checked; the first failure is the exit status.
		var exitErr error
		for _, img := range imgs {
			r, err := checkContent(ctx, cs, img.Target(), platforms.Default())
			if err != nil {
				if exitErr == nil {
					exitErr = fmt.Errorf("unable to check %v: %w", img.Name(), err)
				}
				log.GetLogger(ctx).WithError(err).Errorf("unable to check %v", img.Name())
			}
			unpacked, err := img.IsUnpacked(ctx, context.String("snapshotter"))
			if err != nil {
				if exitErr == nil {
					exitErr = fmt.Errorf("unable to check unpack for %v: %w", img.Name(), err)
				}
				log.GetLogger(ctx).WithError(err).Errorf("unable to check unpack for %v", img.Name())
			}
			if quiet {
				if r.complete && unpacked {
					fmt.Fprintln(commands.Stdout, img.Name())
				}
				continue
			}
			fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%t\n",
				img.Name(), img.Target().MediaType, img.Target().Digest, r.status, r.size, unpacked)
		}
		if !quiet {
			tw.Flush()
		}
		return exitErr
	},
}

// contentCheck is what `images check` says of an image's content.
type contentCheck struct {
	status   string // "complete (2/2)", "incomplete (1/2)", "unavailable (0/?)", "error"
	size     string // present/required, human
	complete bool
}

// checkContent checks that the config and layers of the platform's
// manifest of target are in the store. A manifest that cannot be found
// (missing, or none for the platform) leaves the image "unavailable"; any
// other failure is an error, and the status "error".
func checkContent(ctx context.Context, cs content.Store, target ocispec.Descriptor, platform platforms.MatchComparer) (contentCheck, error) {
	m, err := images.Manifest(ctx, cs, target, platform)
	if errdefs.IsNotFound(err) {
		// As containerd's ctr: nothing is counted present without a
		// manifest to say what is required.
		return contentCheck{status: "unavailable (0/?)", size: commands.HumanBytes(0) + "/?"}, nil
	}
	if err != nil {
		return contentCheck{status: "error", size: "-"}, err
	}
	required := append([]ocispec.Descriptor{m.Config}, m.Layers...)
	var (
		present                   int
		presentSize, requiredSize int64
	)
	for _, d := range required {
		requiredSize += d.Size
		_, err := cs.Info(ctx, d.Digest)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return contentCheck{status: "error", size: "-"}, err
		}
		present++
		presentSize += d.Size
	}
	r := contentCheck{
		status:   "complete",
		complete: present == len(required),
		size:     commands.HumanBytes(presentSize) + "/" + commands.HumanBytes(requiredSize),
	}
	if !r.complete {
		r.status = "incomplete"
	}
	r.status += fmt.Sprintf(" (%d/%d)", present, len(required))
	return r, nil
}

var removeCommand = cli.Command{
	Name:        "delete",
	Aliases:     []string{"del", "remove", "rm"},
	Usage:       "remove one or more images by reference",
	ArgsUsage:   "[flags] <ref> [<ref>, ...]",
	Description: "remove one or more images by reference",
	Flags: []cli.Flag{
		cli.BoolFlag{
			Name:  "sync",
			Usage: "Synchronously remove image and all associated resources",
		},
	},
	Action: func(context *cli.Context) error {
		refs := context.Args()
		c, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()
		var exitErr error
		is := c.ImageService()
		for i, ref := range refs {
			var opts []images.DeleteOpt
			// One collection, after the last: it collects for them all.
			if context.Bool("sync") && i == len(refs)-1 {
				opts = append(opts, images.SynchronousDelete())
			}
			if err := is.Delete(ctx, ref, opts...); err != nil {
				if !errdefs.IsNotFound(err) {
					if exitErr == nil {
						exitErr = fmt.Errorf("unable to delete %v: %w", ref, err)
					}
					log.GetLogger(ctx).WithError(err).Errorf("unable to delete %v", ref)
					continue
				}
				log.GetLogger(ctx).Warnf("%v: image not found", ref)
				continue
			}
			fmt.Fprintln(commands.Stdout, ref)
		}
		return exitErr
	},
}
