package events

import "github.com/urfave/cli"

// Command is `ctr events`.
var Command = cli.Command{
	Name:  "events",
	Usage: "Display containerd events",
	// TODO(H1b): subcommands.
}
