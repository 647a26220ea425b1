package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strings"
	"text/template"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/version"
)

// The CRI version answers, as containerd's: the CRI's own version
// "0.1.0" and API "v1", and the runtime named containerd so that tools
// that branch on it treat this daemon alike.
const (
	criVersion        = "0.1.0"
	criRuntimeName    = "containerd"
	criRuntimeAPIVers = "v1"
	// networkNotReadyReason is the kubelet's reason for a network that is
	// not ready.
	networkNotReadyReason = "NetworkPluginNotReady"
)

// Version reports the runtime's name and versions.
func (s *Service) Version(ctx context.Context, r *runtime.VersionRequest) (*runtime.VersionResponse, error) {
	return &runtime.VersionResponse{
		Version:           criVersion,
		RuntimeName:       criRuntimeName,
		RuntimeVersion:    version.Version,
		RuntimeApiVersion: criRuntimeAPIVers,
	}, nil
}

// Status reports the runtime ready (it answers) and the network ready
// when a CNI configuration is loaded; verbose adds the plugin's config.
func (s *Service) Status(ctx context.Context, r *runtime.StatusRequest) (*runtime.StatusResponse, error) {
	netCond := &runtime.RuntimeCondition{Type: runtime.NetworkReady, Status: true}
	if err := s.network.Status(); err != nil {
		netCond.Status = false
		netCond.Reason = networkNotReadyReason
		netCond.Message = fmt.Sprintf("Network plugin returns error: %v", err)
	}
	resp := &runtime.StatusResponse{
		Status: &runtime.RuntimeStatus{Conditions: []*runtime.RuntimeCondition{
			{Type: runtime.RuntimeReady, Status: true},
			netCond,
		}},
		RuntimeHandlers: s.runtimeHandlers(ctx),
		// The spec applies SupplementalGroupsPolicy (Merge, Strict), and
		// a pod with a user namespace may use the host's network (/sys
		// is then bind mounted read-only).
		Features: &runtime.RuntimeFeatures{
			SupplementalGroupsPolicy:  true,
			UserNamespacesHostNetwork: true,
		},
	}
	if r.GetVerbose() {
		cfg, err := json.Marshal(s.config)
		if err != nil {
			return nil, grpcError(err)
		}
		golang, _ := json.Marshal(goruntime.Version())
		resp.Info = map[string]string{"config": string(cfg), "golang": string(golang)}
		last := "OK"
		if err := s.network.Status(); err != nil {
			last = err.Error()
		}
		resp.Info["lastCNILoadStatus"] = last
	}
	return resp, nil
}

// runtimeHandlers are the configured runtimes, the default one also under
// the name "" as containerd lists it. Recursive read-only mounts go with
// the kernel; user namespaces for pods with the kernel and the runtime
// binary (idmapped mounts in both).
func (s *Service) runtimeHandlers(ctx context.Context) []*runtime.RuntimeHandler {
	names := []string{""}
	for name := range s.config.Containerd.Runtimes {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]*runtime.RuntimeHandler, 0, len(names))
	for _, n := range names {
		userns := false
		if rt, err := s.config.RuntimeFor(n); err == nil {
			userns = defaultUsernsProbe.supported(ctx, rt)
		}
		out = append(out, &runtime.RuntimeHandler{Name: n, Features: &runtime.RuntimeHandlerFeatures{
			RecursiveReadOnlyMounts: recursiveReadOnlySupported(),
			UserNamespaces:          userns,
		}})
	}
	return out
}

// RuntimeConfig reports the cgroup driver the kubelet must match: systemd
// if the default runtime's options ask for systemd cgroups, else cgroupfs.
func (s *Service) RuntimeConfig(ctx context.Context, r *runtime.RuntimeConfigRequest) (*runtime.RuntimeConfigResponse, error) {
	driver := runtime.CgroupDriver_CGROUPFS
	if rt, err := s.config.RuntimeFor(""); err == nil {
		if o, err := rt.RuncOptions(); err == nil && o.SystemdCgroup {
			driver = runtime.CgroupDriver_SYSTEMD
		}
	}
	return &runtime.RuntimeConfigResponse{Linux: &runtime.LinuxRuntimeConfiguration{CgroupDriver: driver}}, nil
}

// cniConfigFileName is the file UpdateRuntimeConfig renders the CNI
// template into, as containerd names it.
const cniConfigFileName = "10-containerd-net.conflist"

// cniConfigTemplate are the values a cni.conf_template is rendered with
// (containerd's names, which existing templates use).
type cniConfigTemplate struct {
	PodCIDR       string
	PodCIDRRanges []string
	Routes        []string
}

// UpdateRuntimeConfig takes the node's pod CIDRs from the kubelet: with a
// cni.conf_template configured and no network ready yet, the template is
// rendered into the CNI config directory. Anything else is a no-op.
func (s *Service) UpdateRuntimeConfig(ctx context.Context, r *runtime.UpdateRuntimeConfigRequest) (*runtime.UpdateRuntimeConfigResponse, error) {
	podCIDRs := r.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	if podCIDRs == "" {
		return &runtime.UpdateRuntimeConfigResponse{}, nil
	}
	var cidrs, routes []string
	var v4, v6 bool
	for _, c := range strings.Split(podCIDRs, ",") {
		c = strings.TrimSpace(c)
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			return nil, grpcError(fmt.Errorf("pod CIDR %q: %v: %w", c, err, errdefs.ErrInvalidArgument))
		}
		if n.IP.To4() != nil {
			v4 = true
		} else {
			v6 = true
		}
		cidrs = append(cidrs, c)
	}
	if v4 {
		routes = append(routes, "0.0.0.0/0")
	}
	if v6 {
		routes = append(routes, "::/0")
	}
	tmpl := s.config.CNI.ConfTemplate
	if tmpl == "" {
		log.G(ctx).Info("CRI: no cni.conf_template; the CNI config is left to other components")
		return &runtime.UpdateRuntimeConfigResponse{}, nil
	}
	if s.network.Status() == nil {
		return &runtime.UpdateRuntimeConfigResponse{}, nil
	}
	if err := writeCNIConfig(s.config.CNI.ConfDir, tmpl, cniConfigTemplate{PodCIDR: cidrs[0], PodCIDRRanges: cidrs, Routes: routes}); err != nil {
		return nil, grpcError(err)
	}
	return &runtime.UpdateRuntimeConfigResponse{}, nil
}

// writeCNIConfig renders the template file into confDir by rename, so
// that the CNI loader never reads half a file.
func writeCNIConfig(confDir, tmplPath string, v cniConfigTemplate) error {
	t, err := template.ParseFiles(tmplPath)
	if err != nil {
		return fmt.Errorf("cni.conf_template %q: %w", tmplPath, err)
	}
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return fmt.Errorf("CNI config directory %q: %w", confDir, err)
	}
	f, err := os.CreateTemp(confDir, ".tmp-"+cniConfigFileName)
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := t.Execute(f, v); err != nil {
		f.Close()
		return fmt.Errorf("rendering cni.conf_template %q: %w", tmplPath, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(confDir, cniConfigFileName))
}
