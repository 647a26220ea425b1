package namespaces

import "github.com/urfave/cli"

// Command is `ctr namespaces`.
var Command = cli.Command{
	Name:  "namespaces",
	Usage: "Manage namespaces",
	// TODO(H1b): subcommands.
}
