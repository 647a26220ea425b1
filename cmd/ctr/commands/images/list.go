package images

import "github.com/urfave/cli"

// TODO(H2b): these commands.
var (
	listCommand      = cli.Command{Name: "listCommand"}
	checkCommand     = cli.Command{Name: "checkCommand"}
	mountCommand     = cli.Command{Name: "mountCommand"}
	unmountCommand   = cli.Command{Name: "unmountCommand"}
	removeCommand    = cli.Command{Name: "removeCommand"}
	setLabelsCommand = cli.Command{Name: "setLabelsCommand"}
)
