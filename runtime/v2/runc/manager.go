// Package runc is the runc half of the containerd-shim-runc-v2 shim: the
// Manager the shim's frame (runtime/v2/shim) runs, and the task service it
// serves, which runs the containers of one group through the runc binary.
package runc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	gorunc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	taskapi "github.com/llitfkitfk/containerd/api/runtime/task/v2"
	"github.com/llitfkitfk/containerd/api/types/runc/options"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/mount"
	"github.com/llitfkitfk/containerd/runtime/v2/shim"
)

const (
	// RuntimeName is the runtime this shim serves.
	RuntimeName = "io.containerd.runc.v2"
	// defaultRuncRoot is runc's --root when the options name none; the
	// namespace is appended, so that ids need only be unique in one.
	defaultRuncRoot = "/run/containerd/runc"
	// Files the shim keeps in a task's bundle, for the delete command
	// that runs after the shim is gone.
	optionsFile = "options.json" // the runtime options Create was given
	initPidFile = "init.pid"     // runc's --pid-file for init
	exitFile    = "exit.json"    // init's exit, once known
)

// groupLabels are the annotations of a container's spec that name the
// shim it shares, first match wins: runc.v2's own and the CRI's sandbox.
var groupLabels = []string{
	"io.containerd.runc.v2.group",
	"io.kubernetes.cri.sandbox-id",
}

type manager struct{}

// New returns the Manager of the runc shim.
func New() shim.Manager { return manager{} }

func (manager) Name() string { return RuntimeName }

// Group returns the group annotation of the bundle's config.json, or the
// task's own id.
func (manager) Group(opts shim.StartOpts) (string, error) {
	b, err := os.ReadFile(filepath.Join(opts.Bundle, "config.json"))
	if err != nil {
		return "", fmt.Errorf("read the spec of task %s: %w", opts.ID, err)
	}
	// Only the annotations: the rest of the spec is runc's business.
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		return "", fmt.Errorf("parse the spec of task %s: %w", opts.ID, err)
	}
	for _, l := range groupLabels {
		if g := spec.Annotations[l]; g != "" {
			return g, nil
		}
	}
	return opts.ID, nil
}

// ShimCgroup returns the shim_cgroup of runc.v1 options.
func (manager) ShimCgroup(opts shim.StartOpts) string {
	o, err := parseOptions(opts.Options)
	if err != nil {
		return ""
	}
	return o.GetShimCgroup()
}

// parseOptions decodes runc.v1 options; nil or another type gives empty
// options. The type URL is the bare message name from containerd 1.x and
// type.googleapis.com-prefixed from 2.x.
func parseOptions(a *anypb.Any) (*options.Options, error) {
	o := &options.Options{}
	if a == nil {
		return o, nil
	}
	name := a.GetTypeUrl()
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	if name != string(proto.MessageName(o)) {
		return o, nil
	}
	if err := proto.Unmarshal(a.GetValue(), o); err != nil {
		return nil, fmt.Errorf("decode runtime options %s: %w", name, err)
	}
	return o, nil
}

// runcRoot is runc's --root for the options, in namespace ns.
func runcRoot(o *options.Options, ns string) string {
	if o.GetRoot() != "" {
		return filepath.Join(o.GetRoot(), ns)
	}
	return filepath.Join(defaultRuncRoot, ns)
}

// newRunc is the runc client for a task's options.
func newRunc(o *options.Options, ns string) *gorunc.Runc {
	cmd := o.GetBinaryName()
	if cmd == "" {
		cmd = gorunc.DefaultCommand
	}
	return &gorunc.Runc{
		Command:       cmd,
		Root:          runcRoot(o, ns),
		SystemdCgroup: o.GetSystemdCgroup(),
	}
}

// writeOptions keeps o in the bundle for Stop.
func writeOptions(bundle string, o *options.Options) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundle, optionsFile), b, 0o600)
}

// readOptions reads what writeOptions kept; none gives empty options.
func readOptions(bundle string) (*options.Options, error) {
	o := &options.Options{}
	b, err := os.ReadFile(filepath.Join(bundle, optionsFile))
	if errors.Is(err, os.ErrNotExist) {
		return o, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, o); err != nil {
		return nil, fmt.Errorf("parse %s: %w", filepath.Join(bundle, optionsFile), err)
	}
	return o, nil
}

// recordedExit is init's exit as the service writes it to the bundle.
type recordedExit struct {
	Pid      int       `json:"pid"`
	Status   int       `json:"status"`
	ExitedAt time.Time `json:"exited_at"`
}

func writeExit(bundle string, e recordedExit) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	tmp := filepath.Join(bundle, "."+exitFile)
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(bundle, exitFile))
}

// Stop force-deletes the container of a shim that is gone, with the runc
// binary and root it was created with, and unmounts its rootfs. Its init
// was killed with it unless the shim recorded an earlier exit.
func (manager) Stop(ctx context.Context, opts shim.StartOpts) (*taskapi.DeleteResponse, error) {
	if opts.Bundle == "" {
		return nil, fmt.Errorf("delete task %s: no bundle", opts.ID)
	}
	o, err := readOptions(opts.Bundle)
	if err != nil {
		return nil, fmt.Errorf("delete task %s: %w", opts.ID, err)
	}
	r := newRunc(o, opts.Namespace)
	if err := r.Delete(ctx, opts.ID, &gorunc.DeleteOpts{Force: true}); err != nil {
		log.GetLogger(ctx).WithError(err).Warnf("runc delete --force %s", opts.ID)
	}
	now := time.Now()
	if err := mount.UnmountAll(filepath.Join(opts.Bundle, "rootfs"), 0); err != nil {
		log.GetLogger(ctx).WithError(err).Warnf("unmount the rootfs of %s", opts.ID)
	}
	if b, err := os.ReadFile(filepath.Join(opts.Bundle, exitFile)); err == nil {
		var e recordedExit
		if json.Unmarshal(b, &e) == nil && e.Pid > 0 {
			return &taskapi.DeleteResponse{Pid: uint32(e.Pid), ExitStatus: uint32(e.Status),
				ExitedAt: timestamppb.New(e.ExitedAt)}, nil
		}
	}
	pid, _ := gorunc.ReadPidFile(filepath.Join(opts.Bundle, initPidFile))
	return &taskapi.DeleteResponse{
		Pid:        uint32(max(pid, 0)),
		ExitStatus: 128 + uint32(unix.SIGKILL),
		ExitedAt:   timestamppb.New(now),
	}, nil
}

func (manager) NewService(ctx context.Context, opts shim.ServiceOpts) (taskapi.TaskService, error) {
	return newService(ctx, opts)
}
