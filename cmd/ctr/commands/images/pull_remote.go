package images

import (
	"bufio"
	gocontext "context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/console"
	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/client"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/remotes"
	dockerremote "github.com/llitfkitfk/containerd/remotes/docker"
	"github.com/llitfkitfk/containerd/remotes/docker/config"
	"github.com/llitfkitfk/containerd/transfer/registry"
)

// registryFlags are how pull and push reach a registry, as containerd's
// ctr names them.
var registryFlags = []cli.Flag{
	cli.BoolFlag{Name: "skip-verify, k", Usage: "Skip SSL certificate validation"},
	cli.BoolFlag{Name: "plain-http", Usage: "Allow connections using plain HTTP"},
	cli.StringFlag{Name: "user, u", Usage: "User[:password] Registry user and password"},
	cli.StringFlag{Name: "refresh", Usage: "Refresh token for authorization server"},
	cli.StringFlag{Name: "hosts-dir", Usage: "Custom hosts configuration directory"},
	cli.StringFlag{Name: "tlscacert", Usage: "Path to TLS root CA"},
	cli.StringFlag{Name: "tlscert", Usage: "Path to TLS client certificate"},
	cli.StringFlag{Name: "tlskey", Usage: "Path to TLS client key"},
}

// snapshotterFlag names the snapshotter images are unpacked into.
var snapshotterFlag = cli.StringFlag{
	Name:   "snapshotter",
	Usage:  "Snapshotter name. Empty value stands for the default value.",
	Value:  client.DefaultSnapshotter,
	EnvVar: "CONTAINERD_SNAPSHOTTER",
}

var labelFlag = cli.StringSliceFlag{Name: "label", Usage: "Labels to attach to the image"}

// labelArgs reads key=value labels; a bare key has the empty value.
func labelArgs(args []string) map[string]string {
	if len(args) == 0 {
		return nil
	}
	labels := make(map[string]string, len(args))
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		labels[k] = v
	}
	return labels
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

// credentials are the --user and --refresh flags: username and secret
// (password or refresh token). A --user without a password asks for one
// on the terminal.
func credentials(context *cli.Context) (username, secret string, err error) {
	if rt := context.String("refresh"); rt != "" {
		return "", rt, nil
	}
	user := context.String("user")
	if user == "" {
		return "", "", nil
	}
	username, secret, ok := strings.Cut(user, ":")
	if ok {
		return username, secret, nil
	}
	secret, err = readPassword()
	if err != nil {
		return "", "", fmt.Errorf("read password for %s: %w", username, err)
	}
	return username, secret, nil
}

// readPassword reads a line from stdin, not echoed when it is a terminal.
func readPassword() (string, error) {
	fmt.Fprint(os.Stderr, "Password: ")
	defer fmt.Fprintln(os.Stderr)
	if c, err := console.ConsoleFromFile(os.Stdin); err == nil {
		if err := c.DisableEcho(); err == nil {
			defer c.Reset()
		}
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// newRegistry is the OCIRegistry transfer object for ref from the flags.
func newRegistry(context *cli.Context, ref string) (*registry.OCIRegistry, error) {
	opts := registry.Options{HostDir: context.String("hosts-dir")}
	if context.Bool("plain-http") {
		opts.DefaultScheme = "http"
	}
	username, secret, err := credentials(context)
	if err != nil {
		return nil, err
	}
	if username != "" || secret != "" {
		opts.Credentials = registry.StaticCredentials{Ref: ref, Username: username, Secret: secret}
	}
	return registry.New(ref, opts), nil
}

// newResolver is the client-side resolver of the --local paths.
func newResolver(ctx gocontext.Context, context *cli.Context) (remotes.Resolver, error) {
	opts := config.HostOptions{}
	if dir := context.String("hosts-dir"); dir != "" {
		opts.HostDir = config.HostDirFromRoot(dir)
	}
	if context.Bool("plain-http") {
		opts.DefaultScheme = "http"
	}
	username, secret, err := credentials(context)
	if err != nil {
		return nil, err
	}
	if username != "" || secret != "" {
		opts.Credentials = func(string) (string, string, error) { return username, secret, nil }
	}
	tlsConfig, err := tlsFlags(context)
	if err != nil {
		return nil, err
	}
	opts.DefaultTLS = tlsConfig
	return dockerremote.NewResolver(dockerremote.ResolverOptions{Hosts: config.ConfigureHosts(ctx, opts)}), nil
}

// tlsFlags is the TLS configuration of --skip-verify, --tlscacert,
// --tlscert and --tlskey; nil when none is set.
func tlsFlags(context *cli.Context) (*tls.Config, error) {
	skip, ca, cert, key := context.Bool("skip-verify"), context.String("tlscacert"), context.String("tlscert"), context.String("tlskey")
	if !skip && ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	cfg := &tls.Config{InsecureSkipVerify: skip}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("--tlscacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tlscacert %s: no PEM certificate in it", ca)
		}
		cfg.RootCAs = pool
	}
	if (cert == "") != (key == "") {
		return nil, errors.New("--tlscert and --tlskey must be given together")
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("--tlscert/--tlskey: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
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
