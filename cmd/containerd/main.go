// Command containerd is the daemon: it loads its config, builds the server
// from its plugins and serves until it is told to stop.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/version"
)

const usage = `
                    __        _                     __
  _________  ____  / /_____ _(_)___  ___  _________/ /
 / ___/ __ \/ __ \/ __/ __ ` + "`" + `/ / __ \/ _ \/ ___/ __  /
/ /__/ /_/ / / / / /_/ /_/ / / / / /  __/ /  / /_/ /
\___/\____/_/ /_/\__/\__,_/_/_/ /_/\___/_/   \__,_/

high performance container runtime
`

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "containerd: %s\n", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	cli.VersionPrinter = func(c *cli.Context) {
		fmt.Println(c.App.Name, version.Package, c.App.Version, version.Revision)
	}
	app := cli.NewApp()
	app.Name = "containerd"
	app.Version = version.Version
	app.Usage = usage
	app.Flags = []cli.Flag{
		cli.StringFlag{Name: "config,c", Usage: "path to the configuration file", Value: defaultConfigPath},
		cli.StringFlag{Name: "log-level,l", Usage: "set the logging level [trace, debug, info, warn, error, fatal, panic]"},
		cli.StringFlag{Name: "address,a", Usage: "address for containerd's GRPC server"},
		cli.StringFlag{Name: "root", Usage: "containerd root directory"},
		cli.StringFlag{Name: "state", Usage: "containerd state directory"},
	}
	app.Commands = []cli.Command{configCommand, publishCommand}
	app.Action = func(c *cli.Context) error {
		return run(context.Background(), c)
	}
	return app
}
