// Package cri is the CRI plugin, io.containerd.grpc.v1.cri: Kubernetes'
// Container Runtime Interface (runtime.v1.RuntimeService and ImageService)
// on the daemon's gRPC socket, configured by the
// [plugins."io.containerd.grpc.v1.cri"] section of the config.
package cri

import (
	"errors"
	"fmt"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/content"
	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/cri/images"
	"github.com/llitfkitfk/containerd/cri/server"
	"github.com/llitfkitfk/containerd/diff"
	imagestore "github.com/llitfkitfk/containerd/images"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/nri"
	"github.com/llitfkitfk/containerd/plugin"
	"github.com/llitfkitfk/containerd/services"
	"github.com/llitfkitfk/containerd/services/tasks"
	"github.com/llitfkitfk/containerd/snapshots"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type:     plugin.GRPCPlugin,
		ID:       "cri",
		Config:   config.Default(),
		Requires: []plugin.Type{plugin.ServicePlugin, plugin.EventPlugin, nri.PluginType},
		InitFn:   initCRI,
	})
}

type criPlugin struct {
	runtime *server.Service
	images  *images.Service
}

func initCRI(ic *plugin.InitContext) (interface{}, error) {
	cfg := ic.Config.(*config.Config)
	ctx := ic.Context
	if err := cfg.Validate(func(msg string) { log.G(ctx).Warn(msg) }); err != nil {
		return nil, fmt.Errorf("[plugins.%q]: %w", config.PluginURI, err)
	}
	cfg.RootDir, cfg.StateDir = ic.Root, ic.State

	get := func(id string) (interface{}, error) { return ic.GetByID(plugin.ServicePlugin, id) }
	var deps struct {
		content      content.Store
		images       imagestore.Store
		containers   containers.Store
		snapshotters map[string]snapshots.Snapshotter
		leases       leases.Manager
		diff         diff.Applier
		tasks        *tasks.Local
	}
	for _, d := range []struct {
		id   string
		into func(interface{}) bool
	}{
		{services.ContentService, func(v interface{}) (ok bool) { deps.content, ok = v.(content.Store); return }},
		{services.ImagesService, func(v interface{}) (ok bool) { deps.images, ok = v.(imagestore.Store); return }},
		{services.ContainersService, func(v interface{}) (ok bool) { deps.containers, ok = v.(containers.Store); return }},
		{services.SnapshotsService, func(v interface{}) (ok bool) {
			deps.snapshotters, ok = v.(map[string]snapshots.Snapshotter)
			return
		}},
		{services.LeasesService, func(v interface{}) (ok bool) { deps.leases, ok = v.(leases.Manager); return }},
		{services.DiffService, func(v interface{}) (ok bool) { deps.diff, ok = v.(diff.Applier); return }},
		{services.TasksService, func(v interface{}) (ok bool) { deps.tasks, ok = v.(*tasks.Local); return }},
	} {
		v, err := get(d.id)
		if err != nil {
			return nil, fmt.Errorf("CRI needs the %s: %w", d.id, err)
		}
		if !d.into(v) {
			return nil, fmt.Errorf("CRI: the %s is a %T", d.id, v)
		}
	}
	if _, ok := deps.snapshotters[cfg.Containerd.Snapshotter]; !ok {
		return nil, fmt.Errorf("[plugins.%q.containerd] snapshotter %q is not loaded", config.PluginURI, cfg.Containerd.Snapshotter)
	}

	// What each snapshotter's plugin advertises decides how images are
	// unpacked into it: with "rebase" (overlayfs), layers in parallel.
	caps := map[string][]string{}
	if ps, err := ic.GetByType(plugin.SnapshotPlugin); err == nil {
		for name, p := range ps {
			if p.Meta != nil {
				caps[name] = p.Meta.Capabilities
			}
		}
	}
	imageService, err := images.New(cfg, images.Deps{
		Content:                 deps.content,
		Images:                  deps.images,
		Snapshotters:            deps.snapshotters,
		Leases:                  deps.leases,
		Applier:                 deps.diff,
		SnapshotterCapabilities: caps,
	})
	if err != nil {
		return nil, err
	}
	runtimeService, err := server.New(cfg, server.Deps{
		Containers:   deps.containers,
		Tasks:        deps.tasks,
		Snapshotters: deps.snapshotters,
		Content:      deps.content,
		Leases:       deps.leases,
		Events:       ic.Events,
		Images:       imageService,
		Address:      ic.Address,
		NRI:          lookupNRI(ic),
	})
	if err != nil {
		return nil, err
	}
	if err := runtimeService.Start(ctx); err != nil {
		return nil, err
	}
	runtimeService.StartNRI(ctx)
	return &criPlugin{runtime: runtimeService, images: imageService}, nil
}

// lookupNRI is the NRI plugin, or nil when it is not loaded (disabled,
// or failed): the CRI then runs without NRI.
func lookupNRI(ic *plugin.InitContext) *nri.NRI {
	v, err := ic.GetByID(nri.PluginType, nri.PluginID)
	if err != nil {
		if !errors.Is(err, plugin.ErrPluginNotFound) && !plugin.IsSkipPlugin(err) {
			log.G(ic.Context).WithError(err).Warn("CRI: running without NRI")
		}
		return nil
	}
	n, _ := v.(*nri.NRI)
	return n
}

// Register serves both CRI services on the daemon's gRPC server.
func (p *criPlugin) Register(s *grpc.Server) error {
	runtime.RegisterRuntimeServiceServer(s, p.runtime)
	runtime.RegisterImageServiceServer(s, p.images)
	return nil
}

// Close stops the streaming server when the daemon shuts down.
func (p *criPlugin) Close() error { return p.runtime.Close() }
