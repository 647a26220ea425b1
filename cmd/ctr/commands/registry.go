package commands

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

	"github.com/llitfkitfk/containerd/remotes"
	"github.com/llitfkitfk/containerd/remotes/docker"
	"github.com/llitfkitfk/containerd/remotes/docker/config"
)

// RegistryFlags are how the commands that talk to a registry (content
// fetch, images pull and push) reach it, as containerd's ctr names them.
var RegistryFlags = []cli.Flag{
	cli.BoolFlag{Name: "skip-verify, k", Usage: "Skip SSL certificate validation"},
	cli.BoolFlag{Name: "plain-http", Usage: "Allow connections using plain HTTP"},
	cli.StringFlag{Name: "user, u", Usage: "User[:password] Registry user and password"},
	cli.StringFlag{Name: "refresh", Usage: "Refresh token for authorization server"},
	cli.StringFlag{Name: "hosts-dir", Usage: "Custom hosts configuration directory"},
	cli.StringFlag{Name: "tlscacert", Usage: "Path to TLS root CA"},
	cli.StringFlag{Name: "tlscert", Usage: "Path to TLS client certificate"},
	cli.StringFlag{Name: "tlskey", Usage: "Path to TLS client key"},
}

// Credentials are the --user and --refresh flags: username and secret
// (password or refresh token). A --user without a password asks for one.
func Credentials(context *cli.Context) (username, secret string, err error) {
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

// readPassword reads a line from stdin, not echoed when it is a terminal;
// the prompt goes to stderr, so that stdout stays the command's output.
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

// NewResolver is the client-side registry resolver of the registry flags
// (content fetch, and images pull and push with --local).
func NewResolver(ctx gocontext.Context, context *cli.Context) (remotes.Resolver, error) {
	opts := config.HostOptions{}
	if dir := context.String("hosts-dir"); dir != "" {
		opts.HostDir = config.HostDirFromRoot(dir)
	}
	if context.Bool("plain-http") {
		opts.DefaultScheme = "http"
	}
	username, secret, err := Credentials(context)
	if err != nil {
		return nil, err
	}
	if username != "" || secret != "" {
		opts.Credentials = func(string) (string, string, error) { return username, secret, nil }
	}
	if opts.DefaultTLS, err = TLSConfig(context); err != nil {
		return nil, err
	}
	return docker.NewResolver(docker.ResolverOptions{Hosts: config.ConfigureHosts(ctx, opts)}), nil
}

// TLSConfig is the TLS configuration of --skip-verify, --tlscacert,
// --tlscert and --tlskey; nil when none is set.
func TLSConfig(context *cli.Context) (*tls.Config, error) {
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
