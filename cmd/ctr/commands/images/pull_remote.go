package images

import (
	gocontext "context"
	"fmt"
	"strings"

	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/transfer/registry"
)

var labelFlag = cli.StringSliceFlag{Name: "label", Usage: "Labels to attach to the image"}

// labelArgs reads --label's key=value labels as every ctr command does
// (a bare key is "true", as containerd's pull and import take it); none
// is nil, so that none are sent.
func labelArgs(args []string) map[string]string {
	if len(args) == 0 {
		return nil
	}
	return commands.LabelArgs(args)
}

// requireLocal fails if a flag only the client-side path honours is set
// without --local, as containerd 2.x's ctr does.
func requireLocal(context *cli.Context, flags ...string) error {
	if context.Bool("local") {
		return nil
	}
	for _, f := range flags {
		if context.IsSet(f) {
			return fmt.Errorf("\"--%s\" requires \"--local\" flag", f)
		}
	}
	return nil
}

// newRegistry is the OCIRegistry transfer object for ref from the flags.
func newRegistry(context *cli.Context, ref string) (*registry.OCIRegistry, error) {
	opts := registry.Options{HostDir: context.String("hosts-dir")}
	if context.Bool("plain-http") {
		opts.DefaultScheme = "http"
	}
	username, secret, err := commands.Credentials(context)
	if err != nil {
		return nil, err
	}
	if username != "" || secret != "" {
		opts.Credentials = registry.StaticCredentials{Ref: ref, Username: username, Secret: secret}
	}
	return registry.New(ref, opts), nil
}

// noTransferService reports whether err says the daemon has no transfer
// or streaming service (containerd 1.6): the commands then do the work
// client-side, as with --local, so that this ctr works against such a
// daemon unchanged. gRPC says so with Unimplemented and "unknown service";
// a transfer the daemon's service declines (Unimplemented for a pair it
// does not know) is an error to report, not to work around.
func noTransferService(ctx gocontext.Context, err error) bool {
	if !errdefs.IsNotImplemented(err) || !strings.Contains(err.Error(), "unknown service") {
		return false
	}
	log.G(ctx).WithError(err).Debug("the daemon cannot transfer; doing it client-side")
	return true
}
