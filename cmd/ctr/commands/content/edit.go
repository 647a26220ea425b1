package content

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/errdefs"
)

var editCommand = cli.Command{
	Name:        "edit",
	Usage:       "Edit a blob and return a new digest",
	ArgsUsage:   "[flags] <digest>",
	Description: "edit a blob in $EDITOR and print the digest of the result, which is stored as a new blob",
	Flags: []cli.Flag{
		cli.StringFlag{
			Name:  "validate",
			Usage: "Validate the result against a format (json, mediatype, etc.)",
		},
		cli.StringFlag{
			Name:   "editor",
			Usage:  "Select editor (vim, emacs, etc.)",
			EnvVar: "EDITOR",
		},
	},
	Action: func(context *cli.Context) error {
		if context.String("validate") != "" {
			return errors.New("validating the edit result not supported")
		}
		editor := context.String("editor")
		if editor == "" {
			return errors.New("editor is required (--editor or $EDITOR)")
		}
		object := context.Args().First()
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
		ra, err := cs.ReaderAt(ctx, ocispec.Descriptor{Digest: dgst})
		if err != nil {
			return err
		}
		tmp, err := os.CreateTemp(os.Getenv("XDG_RUNTIME_DIR"), "edit-")
		if err != nil {
			ra.Close()
			return err
		}
		defer os.Remove(tmp.Name())
		_, err = io.Copy(tmp, content.NewReader(ra))
		ra.Close()
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}

		// The editor is a shell command the user chose; the file name is
		// passed as an argument, not spliced into it.
		cmd := exec.Command("sh", "-c", editor+` "$@"`, "editor", tmp.Name())
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("editor: %w", err)
		}
		// Reopened: an editor may replace the file rather than write it.
		edited, err := os.Open(tmp.Name())
		if err != nil {
			return err
		}
		defer edited.Close()
		w, err := openWriter(ctx, cs, "edit-"+object, ocispec.Descriptor{})
		if err != nil {
			return err
		}
		defer w.Close()
		if err := w.Truncate(0); err != nil { // a leftover of an earlier edit
			return err
		}
		if _, err := copyChunks(w, edited); err != nil {
			return err
		}
		if err := w.Commit(ctx, 0, w.Digest()); err != nil && !errdefs.IsAlreadyExists(err) {
			return err
		}
		fmt.Fprintln(commands.Stdout, w.Digest())
		return nil
	},
}
