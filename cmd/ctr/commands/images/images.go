// Package images is `ctr images`: the image store, and pulling, pushing,
// importing and exporting images.
package images

import "github.com/urfave/cli"

// Command is `ctr images`.
var Command = cli.Command{
	Name:    "images",
	Aliases: []string{"image", "i"},
	Usage:   "Manage images",
	Subcommands: cli.Commands{
		checkCommand,
		exportCommand,
		importCommand,
		listCommand,
		mountCommand,
		unmountCommand,
		pullCommand,
		pushCommand,
		removeCommand,
		tagCommand,
		setLabelsCommand,
	},
}
