package shim

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/api/types"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/version"
)

// Environment the daemons pass to a shim's commands.
const (
	// ttrpcAddressEnv is where the daemon takes forwarded events; every
	// daemon generation sets it.
	ttrpcAddressEnv = "TTRPC_ADDRESS"
	// maxShimVersionEnv is set by containerd 2.x daemons, which read the
	// start command's answer as JSON bootstrap parameters.
	maxShimVersionEnv = "MAX_SHIM_VERSION"
)

// flags are a shim command's arguments, as every daemon generation passes
// them: `<shim> -namespace NS -address GRPC -publish-binary BIN -id ID
// [-bundle DIR] [-debug] start|delete`; no action means serve.
type flags struct {
	namespace, id, address, publishBinary string
	bundle, socket                        string
	debug, version, info                  bool
	action                                string
}

func parseFlags(name string, args []string, stderr io.Writer) (*flags, error) {
	var f flags
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.namespace, "namespace", "", "namespace of the task")
	fs.StringVar(&f.id, "id", "", "id of the task (of its group, when serving)")
	fs.StringVar(&f.address, "address", "", "gRPC address of the daemon")
	fs.StringVar(&f.publishBinary, "publish-binary", "", "daemon binary to publish events with when no ttrpc address is given")
	fs.StringVar(&f.bundle, "bundle", "", "bundle directory, for delete; the working directory if unset")
	fs.StringVar(&f.socket, "socket", "", "socket path to serve on instead of the inherited listener (fd 3)")
	fs.BoolVar(&f.debug, "debug", false, "log at debug level")
	fs.BoolVar(&f.version, "v", false, "")
	fs.BoolVar(&f.version, "version", false, "print the version and exit")
	// A flag, not an action: older shims fail confusingly on an unknown
	// action, as containerd found when it added it.
	fs.BoolVar(&f.info, "info", false, "read runtime options from stdin, print the runtime's RuntimeInfo and exit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	f.action = fs.Arg(0)
	if fs.NArg() > 1 {
		return nil, fmt.Errorf("unexpected arguments after %q: %q", f.action, fs.Args()[1:])
	}
	return &f, nil
}

// Run is the main of a shim binary: it parses the command line in os.Args,
// runs start, delete or, with no action, serves the task API of m until the
// shim is shut down, and exits the process.
func Run(m Manager) {
	os.Exit(run(m, os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run returns the exit status. Only start and delete write to stdout, and
// only their answer: the daemons read stdout (1.6 and 2.x read stdout and
// stderr together) as the answer.
func run(m Manager, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	name := filepath.Base(args[0])
	f, err := parseFlags(name, args[1:], stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // the flag package printed the error and usage
	}
	if f.version {
		fmt.Fprintf(stdout, "%s:\n  Version:  %s\n  Revision: %s\n  Go version: %s\n\n",
			name, version.Version, version.Revision, runtime.Version())
		return 0
	}
	if f.info {
		if err := printInfo(m, stdin, stdout); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", m.Name(), err)
			return 1
		}
		return 0
	}
	if err := dispatch(m, f, stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", m.Name(), err)
		return 1
	}
	return 0
}

func dispatch(m Manager, f *flags, stdin io.Reader, stdout io.Writer) error {
	if f.namespace == "" {
		return errors.New("shim namespace cannot be empty: pass -namespace")
	}
	if err := namespaces.Validate(f.namespace); err != nil {
		return fmt.Errorf("shim namespace %q: %w", f.namespace, err)
	}
	if f.id == "" {
		return errors.New("shim id cannot be empty: pass -id")
	}
	ctx := namespaces.WithNamespace(context.Background(), f.namespace)
	switch f.action {
	case "start":
		// Nothing may reach stderr on success: 1.6 and 2.x daemons take
		// stdout and stderr together as the answer.
		logrus.SetOutput(io.Discard)
		return start(m, f, stdin, stdout)
	case "delete":
		return deleteTask(ctx, m, f, stdout)
	case "":
		return serve(ctx, m, f)
	default:
		return fmt.Errorf("unknown action %q: want start, delete or none", f.action)
	}
}

// deleteTask is the delete command: the daemon runs it for a task whose
// shim is gone, in the bundle (or with -bundle), and reads the binary
// DeleteResponse on stdout. Warnings go to stderr, which the daemon logs.
func deleteTask(ctx context.Context, m Manager, f *flags, stdout io.Writer) error {
	logrus.SetOutput(os.Stderr)
	logrus.SetLevel(logrus.WarnLevel)
	if f.debug {
		logrus.SetLevel(logrus.DebugLevel)
	}
	ctx = log.WithLogger(ctx, log.L.WithFields(logrus.Fields{"id": f.id, "namespace": f.namespace}))
	bundle := f.bundle
	if bundle == "" {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		bundle = wd
	}
	resp, err := m.Stop(ctx, StartOpts{
		ID:            f.id,
		Namespace:     f.namespace,
		Bundle:        bundle,
		Address:       f.address,
		TTRPCAddress:  os.Getenv(ttrpcAddressEnv),
		PublishBinary: f.publishBinary,
		Debug:         f.debug,
	})
	if err != nil {
		return fmt.Errorf("delete task %s: %w", f.id, err)
	}
	if resp == nil {
		return fmt.Errorf("delete task %s: runtime returned no exit status", f.id)
	}
	data, err := proto.Marshal(resp)
	if err != nil {
		return fmt.Errorf("marshal delete response: %w", err)
	}
	if _, err := stdout.Write(data); err != nil {
		return fmt.Errorf("write delete response: %w", err)
	}
	return nil
}

// InfoManager may be implemented by a Manager that tells more of its
// runtime than its name and version (runc's features, say) to -info.
type InfoManager interface {
	Info(ctx context.Context, options *anypb.Any) (*types.RuntimeInfo, error)
}

// printInfo is -info, which containerd 2.x runs for its introspection
// service (and CRI, for runtime features): the runtime options, an Any, on
// stdin, a binary RuntimeInfo on stdout.
func printInfo(m Manager, stdin io.Reader, stdout io.Writer) error {
	input, err := io.ReadAll(io.LimitReader(stdin, maxStartInput))
	if err != nil {
		return fmt.Errorf("read runtime options from stdin: %w", err)
	}
	var opts *anypb.Any
	if len(input) > 0 {
		opts = &anypb.Any{}
		if err := proto.Unmarshal(input, opts); err != nil {
			return fmt.Errorf("decode runtime options on stdin: %w", err)
		}
	}
	var info *types.RuntimeInfo
	if im, ok := m.(InfoManager); ok {
		if info, err = im.Info(context.Background(), opts); err != nil {
			return fmt.Errorf("runtime info: %w", err)
		}
	} else {
		info = &types.RuntimeInfo{
			Name:    m.Name(),
			Version: &types.RuntimeVersion{Version: version.Version, Revision: version.Revision},
			Options: opts,
		}
	}
	data, err := proto.Marshal(info)
	if err != nil {
		return fmt.Errorf("marshal runtime info: %w", err)
	}
	_, err = stdout.Write(data)
	return err
}
