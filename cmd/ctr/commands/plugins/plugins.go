// Package plugins is `ctr plugins`: what the daemon loaded, as its
// introspection service reports it.
package plugins

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli"
	"google.golang.org/grpc/codes"

	introspectionapi "github.com/llitfkitfk/containerd/api/services/introspection/v1"
	"github.com/llitfkitfk/containerd/api/types"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/plugin"
)

// Command is `ctr plugins`.
var Command = cli.Command{
	Name:    "plugins",
	Aliases: []string{"plugin"},
	Usage:   "Provides information about containerd plugins",
	Subcommands: cli.Commands{
		listCommand,
	},
}

var listCommand = cli.Command{
	Name:      "list",
	Aliases:   []string{"ls"},
	Usage:     "Lists containerd plugins",
	ArgsUsage: "[flags] [<filter>, ...]",
	Flags: []cli.Flag{
		cli.BoolFlag{
			Name:  "quiet, q",
			Usage: "Print only the plugin ids",
		},
		cli.BoolFlag{
			Name:  "detailed, d",
			Usage: "Print detailed information about each plugin",
		},
	},
	Action: func(context *cli.Context) error {
		client, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer client.Close()
		resp, err := client.IntrospectionService().Plugins(ctx, &introspectionapi.PluginsRequest{Filters: context.Args()})
		if err != nil {
			return errdefs.FromGRPC(err)
		}
		switch {
		case context.Bool("quiet"):
			for _, p := range resp.Plugins {
				fmt.Fprintln(commands.Stdout, p.Id)
			}
			return nil
		case context.Bool("detailed"):
			return printDetailed(resp.Plugins)
		}
		w := tabwriter.NewWriter(commands.Stdout, 4, 8, 4, ' ', 0)
		fmt.Fprintln(w, "TYPE\tID\tPLATFORMS\tSTATUS\t")
		for _, p := range resp.Plugins {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t\n", p.Type, p.Id, platformColumn(p.Platforms), status(p))
		}
		return w.Flush()
	},
}

// status is "ok", "skip" for a plugin that chose not to load here (its
// error says so), or "error".
func status(p *introspectionapi.Plugin) string {
	switch {
	case p.InitErr == nil:
		return "ok"
	case strings.Contains(p.InitErr.Message, plugin.ErrSkipPlugin.Error()):
		return "skip"
	}
	return "error"
}

// platformColumn is the plugin's distinct platforms, sorted and joined by
// commas, or "-" for none.
func platformColumn(ps []*types.Platform) string {
	if len(ps) == 0 {
		return "-"
	}
	seen := map[string]bool{}
	var names []string
	for _, p := range ps {
		name := platforms.Format(ocispec.Platform{OS: p.Os, Architecture: p.Architecture, Variant: p.Variant})
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// printDetailed prints each plugin as a block of "Key: value" lines, the
// blocks separated by an empty line, as containerd's `plugins ls -d`.
func printDetailed(plugins []*introspectionapi.Plugin) error {
	w := tabwriter.NewWriter(commands.Stdout, 4, 8, 4, ' ', 0)
	for i, p := range plugins {
		if i > 0 {
			fmt.Fprintln(w, "\t\t\t")
		}
		fmt.Fprintln(w, "Type:\t", p.Type)
		fmt.Fprintln(w, "ID:\t", p.Id)
		if len(p.Requires) > 0 {
			fmt.Fprintln(w, "Requires:\t")
			for _, r := range p.Requires {
				fmt.Fprintln(w, "\t", r)
			}
		}
		if len(p.Platforms) > 0 {
			fmt.Fprintln(w, "Platforms:\t", platformColumn(p.Platforms))
		}
		if len(p.Exports) > 0 {
			fmt.Fprintln(w, "Exports:\t")
			keys := make([]string, 0, len(p.Exports))
			for k := range p.Exports {
				keys = append(keys, k)
			}
			sort.Strings(keys) // containerd's order is the map's; a stable one reads better
			for _, k := range keys {
				fmt.Fprintln(w, "\t", k, "\t", p.Exports[k])
			}
		}
		if len(p.Capabilities) > 0 {
			fmt.Fprintln(w, "Capabilities:\t", strings.Join(p.Capabilities, ","))
		}
		if p.InitErr != nil {
			fmt.Fprintln(w, "Error:\t")
			fmt.Fprintln(w, "\t Code:\t", codes.Code(p.InitErr.Code))
			fmt.Fprintln(w, "\t Message:\t", p.InitErr.Message)
		}
	}
	return w.Flush()
}
