package shim

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	bootstrap "github.com/llitfkitfk/containerd/api/runtime/bootstrap/v1"
)

// maxStartInput bounds what start reads from stdin: runtime options or
// bootstrap parameters are a few hundred bytes.
const maxStartInput = 10 << 20

// startRequest is what a start command was asked, in either protocol.
type startRequest struct {
	opts StartOpts
	// socketDir is where the daemon wants the socket, "" for the default.
	socketDir string
	// bootstrap is set when the daemon spoke containerd 2.3+'s bootstrap
	// protocol: it then reads a binary BootstrapResult.
	bootstrap bool
}

// parseStartInput tells the two start protocols apart by stdin.
//
// containerd 2.3+ writes a BootstrapParams message. Older daemons (1.6,
// 1.7, 2.0-2.2, ours) write the runtime options, an Any, or nothing. An
// Any decodes as a BootstrapParams too (its type URL lands in instance_id,
// its value in namespace, where it is valid UTF-8), so what tells them
// apart is the identity: bootstrap parameters name the task and namespace
// of the command line.
func parseStartInput(input []byte, f *flags, getenv func(string) string) (startRequest, error) {
	req := startRequest{opts: StartOpts{
		ID:            f.id,
		Namespace:     f.namespace,
		Address:       f.address,
		TTRPCAddress:  getenv(ttrpcAddressEnv),
		PublishBinary: f.publishBinary,
		Debug:         f.debug,
	}}
	var params bootstrap.BootstrapParams
	if len(input) > 0 && proto.Unmarshal(input, &params) == nil &&
		params.GetInstanceId() == f.id && params.GetNamespace() == f.namespace {
		req.bootstrap = true
		if a := params.GetContainerdGrpcAddress(); a != "" {
			req.opts.Address = a
		}
		if a := params.GetContainerdTtrpcAddress(); a != "" {
			req.opts.TTRPCAddress = a
		}
		if b := params.GetContainerdBinary(); b != "" {
			req.opts.PublishBinary = b
		}
		// Levels are ordered as logrus's: more verbose is lower.
		if params.GetLogLevel() <= bootstrap.LogLevel_LOG_LEVEL_DEBUG {
			req.opts.Debug = true
		}
		req.socketDir = params.GetSocketDir()
		req.opts.Options = runtimeOptions(params.GetExtensions())
		return req, nil
	}
	if len(input) > 0 {
		var opts anypb.Any
		if err := proto.Unmarshal(input, &opts); err != nil {
			return req, fmt.Errorf("stdin is neither bootstrap parameters for task %s in namespace %s nor runtime options: %w",
				f.id, f.namespace, err)
		}
		req.opts.Options = &opts
	}
	return req, nil
}

// runtimeOptions picks the runtime options out of the bootstrap
// extensions. containerd 2.4 adds them as the only extension, the Any it
// would have written to an older shim's stdin; extensions the protocol may
// define later for itself are skipped.
func runtimeOptions(exts []*bootstrap.Extension) *anypb.Any {
	for _, e := range exts {
		if v := e.GetValue(); v != nil && v.GetTypeUrl() != "" && !bootstrapExtension(v.GetTypeUrl()) {
			return v
		}
	}
	return nil
}

// bootstrapExtension reports whether typeURL is one of the bootstrap
// protocol's own messages rather than a runtime's options.
func bootstrapExtension(typeURL string) bool {
	name := typeURL[strings.LastIndexByte(typeURL, '/')+1:]
	return strings.HasPrefix(name, "containerd.runtime.bootstrap.")
}

// startAnswer is what start prints for the shim at address, in the form
// the daemon that ran it reads:
//   - a binary BootstrapResult for a daemon of the bootstrap protocol;
//   - JSON bootstrap parameters for containerd 2.0-2.2, which say so by
//     MAX_SHIM_VERSION (2.3+ set it too, but they speak the protocol);
//   - the bare address for containerd 1.6 and our daemon, which take the
//     whole output, trimmed, as the address (1.7 reads either).
//
// The version is 2 throughout: the shim serves containerd.task.v2.Task.
func startAnswer(address string, req startRequest, maxShimVersion string) ([]byte, error) {
	if req.bootstrap {
		return proto.Marshal(&bootstrap.BootstrapResult{Version: 2, Address: address, Protocol: "ttrpc"})
	}
	if v, err := strconv.Atoi(maxShimVersion); err == nil && v >= 2 {
		return json.Marshal(struct {
			Version  int    `json:"version"`
			Address  string `json:"address"`
			Protocol string `json:"protocol"`
		}{2, address, "ttrpc"})
	}
	return []byte(address), nil
}
