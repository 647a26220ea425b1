// Package version is `ctr version`.
package version

import (
	"fmt"
	"os"
	"runtime"

	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/version"
)

// Command is `ctr version`: this ctr's version, then the daemon's, laid
// out as containerd's ctr does, which scripts parse.
var Command = cli.Command{
	Name:  "version",
	Usage: "Print the client and server versions",
	Action: func(context *cli.Context) error {
		if context.NArg() != 0 {
			return fmt.Errorf("extra arguments: %v", context.Args())
		}
		out := commands.Stdout
		fmt.Fprintln(out, "Client:")
		fmt.Fprintln(out, "  Version: ", version.Version)
		fmt.Fprintln(out, "  Revision:", version.Revision)
		fmt.Fprintln(out, "  Go version:", runtime.Version())
		fmt.Fprintln(out, "")
		client, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer client.Close()
		v, err := client.Version(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, "Server:")
		fmt.Fprintln(out, "  Version: ", v.Version)
		fmt.Fprintln(out, "  Revision:", v.Revision)
		server, err := client.Server(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, "  UUID:", server.UUID)
		if v.Version != version.Version {
			fmt.Fprintln(os.Stderr, "WARNING: version mismatch")
		}
		if v.Revision != version.Revision {
			fmt.Fprintln(os.Stderr, "WARNING: revision mismatch")
		}
		return nil
	},
}
