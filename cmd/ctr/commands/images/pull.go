package images

import "github.com/urfave/cli"

// TODO(H2a): these commands.
var (
	pullCommand   = cli.Command{Name: "pullCommand"}
	pushCommand   = cli.Command{Name: "pushCommand"}
	importCommand = cli.Command{Name: "importCommand"}
	exportCommand = cli.Command{Name: "exportCommand"}
	tagCommand    = cli.Command{Name: "tagCommand"}
)
