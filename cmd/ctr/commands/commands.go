// Package commands holds what ctr's commands share: the global flags, the
// client they connect with, and the context their calls run under.
package commands

import (
	gocontext "context"
	"errors"
	"os"

	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/namespaces"
)

// DefaultAddress is the daemon's socket unless --address or
// CONTAINERD_ADDRESS says otherwise.
const DefaultAddress = "/run/containerd/containerd.sock"

// GlobalFlags are ctr's flags before the command, as containerd's.
var GlobalFlags = []cli.Flag{
	cli.BoolFlag{
		Name:  "debug",
		Usage: "Enable debug output in logs",
	},
	cli.StringFlag{
		Name:   "address, a",
		Usage:  "Address for containerd's GRPC server",
		Value:  DefaultAddress,
		EnvVar: "CONTAINERD_ADDRESS",
	},
	cli.DurationFlag{
		Name:  "timeout",
		Usage: "Total timeout for ctr commands",
	},
	cli.DurationFlag{
		Name:  "connect-timeout",
		Usage: "Timeout for connecting to containerd",
	},
	cli.StringFlag{
		Name:   "namespace, n",
		Usage:  "Namespace to use with commands",
		Value:  namespaces.Default,
		EnvVar: "CONTAINERD_NAMESPACE",
	},
}

// AppContext is the context a command's calls run under: the namespace
// of --namespace and the deadline of --timeout.
func AppContext(context *cli.Context) (gocontext.Context, gocontext.CancelFunc) {
	ctx := namespaces.WithNamespace(gocontext.Background(), context.GlobalString("namespace"))
	if timeout := context.GlobalDuration("timeout"); timeout > 0 {
		return gocontext.WithTimeout(ctx, timeout)
	}
	return gocontext.WithCancel(ctx)
}

// NewClient connects to the daemon of --address and returns the client
// with the command's context; the caller defers cancel and client.Close.
func NewClient(context *cli.Context, opts ...client.Opt) (*client.Client, gocontext.Context, gocontext.CancelFunc, error) {
	if timeout := context.GlobalDuration("connect-timeout"); timeout > 0 {
		opts = append(opts, client.WithTimeout(timeout))
	}
	c, err := client.New(context.GlobalString("address"), opts...)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := AppContext(context)
	return c, ctx, cancel, nil
}

// ExitCode is the exit status for err: an exit coder's code (a task's
// exit status, which `ctr run` and `ctr tasks start` pass on through
// cli.NewExitError, and which cli itself exits with silently), else 1.
func ExitCode(err error) int {
	var ce cli.ExitCoder
	if errors.As(err, &ce) {
		return ce.ExitCode()
	}
	return 1
}

// Stdout is where commands write their output; a variable for tests.
var Stdout = os.Stdout
