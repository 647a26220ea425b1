// Package content is `ctr content`: the daemon's content store, blob by
// blob, and fetching an image's blobs from a registry.
package content

import (
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
)

// Command is `ctr content`.
var Command = cli.Command{
	Name:  "content",
	Usage: "Manage content",
	Subcommands: cli.Commands{
		activeIngestCommand,
		deleteCommand,
		editCommand,
		fetchCommand,
		getCommand,
		ingestCommand,
		listCommand,
		setLabelsCommand,
	},
}

// parseDigest parses a digest argument, with an error that names it.
func parseDigest(arg string) (digest.Digest, error) {
	if arg == "" {
		return "", errors.New("a digest is required")
	}
	dgst, err := digest.Parse(arg)
	if err != nil {
		return "", fmt.Errorf("invalid digest %q: %w", arg, err)
	}
	return dgst, nil
}

var getCommand = cli.Command{
	Name:        "get",
	Usage:       "Get the data for an object",
	ArgsUsage:   "<digest>",
	Description: "write the blob's data to stdout",
	Action: func(context *cli.Context) error {
		dgst, err := parseDigest(context.Args().First())
		if err != nil {
			return err
		}
		client, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer client.Close()
		ra, err := client.ContentStore().ReaderAt(ctx, ocispec.Descriptor{Digest: dgst})
		if err != nil {
			return err
		}
		defer ra.Close()
		// Reads of 1 MiB, the size of the daemon's messages.
		_, err = io.CopyBuffer(commands.Stdout, content.NewReader(ra), make([]byte, 1<<20))
		return err
	},
}

var ingestCommand = cli.Command{
	Name:      "ingest",
	Usage:     "Accept content into the store",
	ArgsUsage: "[flags] <key>",
	Description: `Ingest the data on stdin into the content store, under the ingest
named <key>. An ingest of the same key that was cut off is resumed where
the daemon's copy ends: stdin is moved there if it is a file, or that many
bytes of it are skipped otherwise.`,
	Flags: []cli.Flag{
		cli.Int64Flag{
			Name:  "expected-size",
			Usage: "Validate against provided size",
		},
		cli.StringFlag{
			Name:  "expected-digest",
			Usage: "Verify content against expected digest",
		},
	},
	Action: func(context *cli.Context) error {
		ref := context.Args().First()
		if ref == "" {
			return errors.New("must specify a transaction reference")
		}
		size := context.Int64("expected-size")
		if size < 0 {
			return fmt.Errorf("invalid --expected-size %d", size)
		}
		var expected digest.Digest
		if s := context.String("expected-digest"); s != "" {
			var err error
			if expected, err = parseDigest(s); err != nil {
				return fmt.Errorf("--expected-digest: %w", err)
			}
		}
		client, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer client.Close()
		return ingest(ctx, client.ContentStore(), ref, os.Stdin, ocispec.Descriptor{Size: size, Digest: expected})
	},
}

var activeIngestCommand = cli.Command{
	Name:        "active",
	Usage:       "Display active transfers",
	ArgsUsage:   "[flags] [<filter>]",
	Description: "display the ongoing transfers",
	Action: func(context *cli.Context) error {
		client, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer client.Close()
		var filters []string
		if f := context.Args().First(); f != "" {
			filters = append(filters, f)
		}
		active, err := client.ContentStore().ListStatuses(ctx, filters...)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(commands.Stdout, 1, 8, 1, '\t', 0)
		fmt.Fprintln(tw, "REF\tSIZE\tAGE\t")
		for _, st := range active {
			fmt.Fprintf(tw, "%s\t%s\t%s\t\n", st.Ref, commands.DecimalSize(st.Offset), commands.HumanDuration(time.Since(st.StartedAt)))
		}
		return tw.Flush()
	},
}

var listCommand = cli.Command{
	Name:        "list",
	Aliases:     []string{"ls"},
	Usage:       "List all blobs in the store",
	ArgsUsage:   "[flags] [<filter>, ...]",
	Description: "list blobs in the content store",
	Flags: []cli.Flag{
		cli.BoolFlag{
			Name:  "quiet, q",
			Usage: "Print only the blob digest",
		},
	},
	Action: func(context *cli.Context) error {
		client, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer client.Close()
		cs := client.ContentStore()
		if context.Bool("quiet") {
			return cs.Walk(ctx, func(info content.Info) error {
				_, err := fmt.Fprintln(commands.Stdout, info.Digest)
				return err
			}, context.Args()...)
		}
		tw := tabwriter.NewWriter(commands.Stdout, 1, 8, 1, '\t', 0)
		fmt.Fprintln(tw, "DIGEST\tSIZE\tAGE\tLABELS")
		if err := cs.Walk(ctx, func(info content.Info) error {
			labels := commands.FormatLabels(info.Labels)
			if labels == "" {
				labels = "-"
			}
			_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", info.Digest, commands.DecimalSize(info.Size),
				commands.HumanDuration(time.Since(info.CreatedAt)), labels)
			return err
		}, context.Args()...); err != nil {
			return err
		}
		return tw.Flush()
	},
}

var setLabelsCommand = cli.Command{
	Name:        "label",
	Usage:       "Add labels to content",
	ArgsUsage:   "<digest> [<label>=<value> ...]",
	Description: "labels blobs in the content store; an empty value removes a label",
	Action: func(context *cli.Context) error {
		object, labels := commands.ObjectWithLabelArgs(context)
		dgst, err := parseDigest(object)
		if err != nil {
			return err
		}
		client, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer client.Close()
		cs := client.ContentStore()

		info := content.Info{Digest: dgst, Labels: map[string]string{}}
		var paths []string
		for k, v := range labels {
			paths = append(paths, "labels."+k)
			if v != "" {
				info.Labels[k] = v
			}
		}
		// With no labels given, print the blob's; an update without
		// field paths would clear them all.
		if len(paths) == 0 {
			info, err = cs.Info(ctx, dgst)
		} else {
			info, err = cs.Update(ctx, info, paths...)
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(commands.Stdout, commands.FormatLabels(info.Labels))
		return nil
	},
}

var deleteCommand = cli.Command{
	Name:      "delete",
	Aliases:   []string{"del", "remove", "rm"},
	Usage:     "Permanently delete one or more blobs",
	ArgsUsage: "[<digest>, ...]",
	Description: `Delete one or more blobs permanently. Successfully deleted
	blobs are printed to stdout; blobs that are not there are skipped.`,
	Action: func(context *cli.Context) error {
		client, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer client.Close()
		cs := client.ContentStore()
		var exitErr error
		for _, arg := range context.Args() {
			dgst, err := parseDigest(arg)
			if err == nil {
				err = cs.Delete(ctx, dgst)
				if errdefs.IsNotFound(err) {
					continue
				}
			}
			if err != nil {
				if exitErr == nil {
					exitErr = err
				}
				log.G(ctx).WithError(err).Errorf("could not delete %v", arg)
				continue
			}
			fmt.Fprintln(commands.Stdout, dgst)
		}
		return exitErr
	},
}
