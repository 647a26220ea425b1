package version

import "github.com/urfave/cli"

// Command is `ctr version`.
var Command = cli.Command{
	Name:  "version",
	Usage: "Print the client and server versions",
	// TODO(H1b): subcommands.
}
