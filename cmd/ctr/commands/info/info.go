// Package info is `ctr info`.
package info

import (
	"github.com/urfave/cli"
	"google.golang.org/protobuf/types/known/emptypb"

	introspectionapi "github.com/llitfkitfk/containerd/api/services/introspection/v1"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/errdefs"
)

// Info is what `ctr info` prints: the daemon's introspection Server
// answer under "server", encoded through its generated field tags as
// containerd's ctr does ({"server": {"uuid": ..., "pid": ..., "pidns": ...}}).
type Info struct {
	Server *introspectionapi.ServerResponse `json:"server"`
}

// Command is `ctr info`.
var Command = cli.Command{
	Name:  "info",
	Usage: "Print the server info",
	Action: func(context *cli.Context) error {
		client, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer client.Close()
		server, err := client.IntrospectionService().Server(ctx, &emptypb.Empty{})
		if err != nil {
			return errdefs.FromGRPC(err)
		}
		return commands.PrintAsJSON(Info{Server: server})
	},
}
