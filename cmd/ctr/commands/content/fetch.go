package content

import "github.com/urfave/cli"

var fetchCommand = cli.Command{Name: "fetch"}
