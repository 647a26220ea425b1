package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/server"
)

// defaultConfigPath is a variable so tests can point it elsewhere.
var defaultConfigPath = server.DefaultConfigPath

var configCommand = cli.Command{
	Name:  "config",
	Usage: "information on the containerd config",
	Subcommands: []cli.Command{
		{
			Name:  "default",
			Usage: "see the output of the default config",
			Action: func(c *cli.Context) error {
				return server.DefaultConfig().Encode(os.Stdout)
			},
		},
		{
			Name:  "dump",
			Usage: "see the output of the final main config with imported in subconfig files",
			Action: func(c *cli.Context) error {
				config, err := loadConfig(c)
				if err != nil {
					return err
				}
				return config.Encode(os.Stdout)
			},
		},
	},
}

// loadConfig reads the config file the flags name, then lays the flags
// over it: flags always win. A missing file is fine only when it is the
// default path, which a fresh host need not have.
func loadConfig(c *cli.Context) (*server.Config, error) {
	config := server.DefaultConfig()
	path := c.GlobalString("config")
	if err := server.LoadConfig(path, config); err != nil {
		if !(errors.Is(err, os.ErrNotExist) && !c.GlobalIsSet("config")) {
			return nil, err
		}
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"root", &config.Root},
		{"state", &config.State},
		{"address", &config.GRPC.Address},
		{"log-level", &config.Debug.Level},
	} {
		if v := c.GlobalString(f.name); v != "" {
			*f.dst = v
		}
	}
	return config, nil
}

// applyLogging sets up the logger from the config before anything logs.
func applyLogging(config *server.Config, w io.Writer) error {
	if err := log.SetLevel(config.Debug.Level); err != nil {
		return fmt.Errorf("--log-level or [debug] level: %w", err)
	}
	if err := log.SetFormat(config.Debug.Format); err != nil {
		return fmt.Errorf("[debug] format: %w", err)
	}
	log.SetOutput(w)
	return nil
}
