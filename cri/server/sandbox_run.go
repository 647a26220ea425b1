package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/cri/cni"
	"github.com/llitfkitfk/containerd/cri/images"
	"github.com/llitfkitfk/containerd/cri/spec"
	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/log"
	ctrdruntime "github.com/llitfkitfk/containerd/runtime"
	"github.com/llitfkitfk/containerd/services/tasks"
)

// Type URLs of what the sandbox container record holds.
const (
	// SandboxMetadataTypeURL is the type of the record's
	// store.SandboxMetadataExtension: store.MarshalSandboxMetadata's JSON.
	// It is this daemon's own (containerd's holds its Go struct's JSON
	// under a URL of its own), so records are recognised on restart.
	SandboxMetadataTypeURL = "github.com/llitfkitfk/containerd/cri/store/SandboxMetadata"
	// runcOptionsTypeURL is runc's options, named as containerd 1.x
	// clients name them (the shim takes either spelling).
	runcOptionsTypeURL = "containerd.runc.v1.Options"
)

// sandboxShmSize is the size of a pod's /dev/shm, as containerd's (64 MiB).
const sandboxShmSize = 64 << 20

// sandboxImages is what RunPodSandbox needs of the image service.
type sandboxImages interface {
	EnsureImage(ctx context.Context, ref string, auth *runtime.AuthConfig, runtimeHandler string) (images.Image, error)
	Snapshotter(runtimeHandler string) string
}

// sandboxSpecFunc makes the pause container's spec (spec.Sandbox).
type sandboxSpecFunc func(context.Context, spec.SandboxInput) (*specs.Spec, error)

// SandboxPaths are the files a sandbox keeps for its containers.
type SandboxPaths struct {
	Hostname, Hosts, Resolv string
	// Shm is the pod's /dev/shm; "" with host IPC.
	Shm string
}

// sandboxRootDir holds a sandbox's files that survive a reboot of the
// daemon (hostname, hosts, resolv.conf); sandboxStateDir its volatile ones
// (the /dev/shm mount point), as containerd lays them out.
func (s *Service) sandboxRootDir(id string) string {
	return filepath.Join(s.config.RootDir, "sandboxes", id)
}

func (s *Service) sandboxStateDir(id string) string {
	return filepath.Join(s.config.StateDir, "sandboxes", id)
}

// sandboxPaths returns the sandbox's files, for its containers' specs.
func (s *Service) sandboxPaths(md *store.SandboxMetadata) SandboxPaths {
	root := s.sandboxRootDir(md.ID)
	p := SandboxPaths{
		Hostname: filepath.Join(root, "hostname"),
		Hosts:    filepath.Join(root, "hosts"),
		Resolv:   filepath.Join(root, "resolv.conf"),
	}
	if !hostIPC(md.Config) {
		p.Shm = filepath.Join(s.sandboxStateDir(md.ID), "shm")
	}
	return p
}

// RunPodSandbox creates and starts a pod's sandbox: its network namespace
// and network, its files, and the pause container that holds its
// namespaces.
func (s *Service) RunPodSandbox(ctx context.Context, r *runtime.RunPodSandboxRequest) (*runtime.RunPodSandboxResponse, error) {
	id, err := s.runSandbox(withNamespace(ctx), r, s.deps.Images, spec.Sandbox)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &runtime.RunPodSandboxResponse{PodSandboxId: id}, nil
}

// validateSandboxConfig refuses what a sandbox cannot be made from.
func validateSandboxConfig(cfg *runtime.PodSandboxConfig) error {
	if cfg == nil {
		return fmt.Errorf("sandbox config is required: %w", errdefs.ErrInvalidArgument)
	}
	md := cfg.GetMetadata()
	if md == nil {
		return fmt.Errorf("sandbox config metadata is required: %w", errdefs.ErrInvalidArgument)
	}
	for _, f := range []struct{ name, v string }{{"name", md.GetName()}, {"namespace", md.GetNamespace()}, {"uid", md.GetUid()}} {
		if f.v == "" {
			return fmt.Errorf("sandbox config metadata.%s is required: %w", f.name, errdefs.ErrInvalidArgument)
		}
	}
	// These are written into the pod's hosts and resolv.conf files, a
	// line each: a line break would add lines of the caller's choosing.
	if strings.ContainsAny(cfg.GetHostname(), " \t\r\n\x00") {
		return fmt.Errorf("sandbox config hostname %q: must not contain spaces or line breaks: %w", cfg.GetHostname(), errdefs.ErrInvalidArgument)
	}
	dns := cfg.GetDnsConfig()
	for _, list := range [][]string{dns.GetServers(), dns.GetSearches(), dns.GetOptions()} {
		for _, v := range list {
			if v == "" || strings.ContainsAny(v, " \t\r\n\x00") {
				return fmt.Errorf("sandbox config dns_config entry %q: must be non-empty, without spaces or line breaks: %w", v, errdefs.ErrInvalidArgument)
			}
		}
	}
	for _, p := range cfg.GetPortMappings() {
		if p.GetContainerPort() < 0 || p.GetContainerPort() > 65535 || p.GetHostPort() < 0 || p.GetHostPort() > 65535 {
			return fmt.Errorf("sandbox config port mapping %d->%d: ports are 0 to 65535: %w", p.GetHostPort(), p.GetContainerPort(), errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// sandboxName is the name a sandbox is reserved under, as containerd's:
// two RunPodSandbox calls for the same pod and attempt conflict.
func sandboxName(md *runtime.PodSandboxMetadata) string {
	return fmt.Sprintf("%s_%s_%s_%d", md.GetName(), md.GetNamespace(), md.GetUid(), md.GetAttempt())
}

// undoStack runs, on failure, what undoes each step done so far, in
// reverse; the errors are logged, the first failure is what is returned.
type undoStack []func(context.Context) error

func (u *undoStack) push(f func(context.Context) error) { *u = append(*u, f) }

func (u undoStack) run(ctx context.Context, id string) {
	// The call's context may be cancelled: undo anyway.
	ctx = context.WithoutCancel(ctx)
	for i := len(u) - 1; i >= 0; i-- {
		if err := u[i](ctx); err != nil {
			log.G(ctx).WithError(err).WithField("sandbox", id).Warn("cleaning up a failed RunPodSandbox")
		}
	}
}

func (s *Service) runSandbox(ctx context.Context, r *runtime.RunPodSandboxRequest, imgs sandboxImages, makeSpec sandboxSpecFunc) (_ string, retErr error) {
	cfg := r.GetConfig()
	if err := validateSandboxConfig(cfg); err != nil {
		return "", err
	}
	id := newID()
	name := sandboxName(cfg.GetMetadata())
	if err := s.sandboxes.Reserve(name, id); err != nil {
		return "", fmt.Errorf("sandbox %s: %w", name, err)
	}
	var undo undoStack
	defer func() {
		if retErr != nil {
			undo.run(ctx, id)
			s.sandboxes.Release(name, id)
		}
	}()

	handler := r.GetRuntimeHandler()
	rt, err := s.config.RuntimeFor(handler)
	if err != nil {
		return "", err
	}
	runcOpts, err := rt.RuncOptions()
	if err != nil {
		return "", fmt.Errorf("runtime handler %q: %w", handler, err)
	}
	img, err := imgs.EnsureImage(ctx, s.config.SandboxImage, nil, handler)
	if err != nil {
		return "", fmt.Errorf("sandbox image %q: %w", s.config.SandboxImage, err)
	}
	snName := imgs.Snapshotter(handler)
	sn, ok := s.deps.Snapshotters[snName]
	if !ok {
		return "", fmt.Errorf("snapshotter %q of runtime handler %q is not available: %w", snName, handler, errdefs.ErrFailedPrecondition)
	}

	md := store.SandboxMetadata{ID: id, Name: name, Config: cfg, RuntimeHandler: handler}

	// The pod's network is set up while its pause container starts: the
	// CNI plugins (one process each) and the shim and runc take hundreds
	// of milliseconds apiece, and neither needs the other. The pause
	// process only holds the network namespace, which exists before
	// either begins; what names the pod's IP (the hosts file, which only
	// workload containers mount, and the metadata) is written once both
	// are done, before the sandbox is listed.
	netSetUp := make(chan struct{}) // closed once the plugins are done
	var (
		netRes *cni.Result
		netErr error
	)
	// A pod with a user namespace gets its network namespace made in
	// it, held until its pause container has joined.
	var userns *usernsHolder
	defer func() { userns.Close() }()
	if hostNetwork(cfg) {
		close(netSetUp)
	} else {
		pn, err := s.podNet()
		if err != nil {
			return "", err
		}
		ns, h, err := newPodNetNS(s.netNSDir(), podUserns(cfg))
		userns = h
		if err != nil {
			return "", fmt.Errorf("network namespace of sandbox %s: %w", id, err)
		}
		undo.push(func(context.Context) error { return ns.Remove() })
		md.NetNSPath = ns.Path()
		// CNI DEL even when ADD failed halfway, so that plugins release
		// what they got (addresses, port mappings); but never while ADD
		// runs.
		undo.push(func(ctx context.Context) error {
			<-netSetUp
			return pn.Remove(ctx, id, ns.Path(), cfg, handler)
		})
		go func() {
			defer close(netSetUp)
			netRes, netErr = pn.Setup(ctx, id, ns.Path(), cfg, handler)
		}()
	}

	paths := s.sandboxPaths(&md)
	undo.push(func(context.Context) error { return s.removeSandboxFiles(&md) })
	if err := s.writeSandboxFiles(&md, paths); err != nil {
		return "", fmt.Errorf("files of sandbox %s: %w", id, err)
	}

	cgroupsPath := ""
	if parent := cfg.GetLinux().GetCgroupParent(); parent != "" {
		cgroupsPath = spec.CgroupsPath(parent, id, runcOpts.GetSystemdCgroup())
	}
	sp, err := makeSpec(ctx, spec.SandboxInput{
		ID:           id,
		Config:       cfg,
		Image:        img.Spec.Config,
		NetNSPath:    md.NetNSPath,
		UserNSPath:   userns.path(),
		HostnamePath: paths.Hostname,
		HostsPath:    paths.Hosts,
		ResolvPath:   paths.Resolv,
		ShmPath:      paths.Shm,
		CgroupsPath:  cgroupsPath,
		Runtime:      rt,
		CRI:          s.config,
	})
	if err != nil {
		return "", fmt.Errorf("spec of sandbox %s: %w", id, err)
	}
	specJSON, err := json.Marshal(sp)
	if err != nil {
		return "", err
	}
	mdJSON, err := store.MarshalSandboxMetadata(md)
	if err != nil {
		return "", err
	}
	optsBytes, err := proto.Marshal(runcOpts)
	if err != nil {
		return "", err
	}

	// A lease keeps the snapshot from the garbage collector until the
	// container record that references it exists.
	if s.deps.Leases != nil {
		l, err := s.deps.Leases.Create(ctx, leases.WithID(id+"-run"), leases.WithExpiration(time.Hour))
		if err != nil {
			return "", fmt.Errorf("lease for sandbox %s: %w", id, err)
		}
		defer s.deps.Leases.Delete(context.WithoutCancel(ctx), l)
		ctx = leases.WithLease(ctx, l.ID)
	}
	if _, err := prepareRootfs(ctx, sn, id, img.ChainID.String(), podUserns(cfg)); err != nil {
		return "", fmt.Errorf("snapshot of sandbox %s on %s: %w", id, img.ChainID, err)
	}
	undo.push(func(ctx context.Context) error { return ignoreNotFound(sn.Remove(ctx, id)) })

	labels := map[string]string{}
	for k, v := range img.Spec.Config.Labels {
		labels[k] = v
	}
	for k, v := range cfg.GetLabels() {
		labels[k] = v
	}
	labels[store.KindLabel] = store.KindSandbox
	rec, err := s.deps.Containers.Create(ctx, containers.Container{
		ID:          id,
		Labels:      labels,
		Image:       s.config.SandboxImage,
		Runtime:     containers.RuntimeInfo{Name: rt.Type, Options: &anypb.Any{TypeUrl: runcOptionsTypeURL, Value: optsBytes}},
		Spec:        &anypb.Any{TypeUrl: specTypeURL, Value: specJSON},
		Snapshotter: snName,
		SnapshotKey: id,
		Extensions: map[string]*anypb.Any{
			store.SandboxMetadataExtension: {TypeUrl: SandboxMetadataTypeURL, Value: mdJSON},
		},
	})
	if err != nil {
		return "", fmt.Errorf("container record of sandbox %s: %w", id, err)
	}
	undo.push(func(ctx context.Context) error { return ignoreNotFound(s.deps.Containers.Delete(ctx, id)) })

	// Empty IO: the shim gives the pause process /dev/null.
	task, err := s.deps.Tasks.Create(ctx, id, tasks.CreateOpts{RuntimePath: rt.Path})
	if err != nil {
		return "", fmt.Errorf("task of sandbox %s: %w", id, err)
	}
	undo.push(func(ctx context.Context) error {
		if err := task.Kill(ctx, uint32(unix.SIGKILL), false); err != nil && !errdefs.IsNotFound(err) {
			log.G(ctx).WithError(err).WithField("sandbox", id).Debug("kill pause task")
		} else {
			// The shim refuses to delete a task whose process runs.
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, _ = task.Wait(wctx)
			cancel()
		}
		return s.deletePauseTask(ctx, id)
	})
	pid, err := task.Start(ctx)
	if err != nil {
		return "", fmt.Errorf("start of sandbox %s: %w", id, err)
	}
	<-netSetUp
	if netErr != nil {
		return "", fmt.Errorf("network of sandbox %s: %w", id, netErr)
	}
	if netRes != nil {
		md.IP, md.AdditionalIPs, md.CNIResult = netRes.IP, netRes.AdditionalIPs, netRes.JSON
	}
	if err := writeHostsFile(&md, paths); err != nil {
		return "", fmt.Errorf("files of sandbox %s: %w", id, err)
	}
	if md.NetNSPath != "" {
		// The record was made before the pod's IP was known.
		if mdJSON, err = store.MarshalSandboxMetadata(md); err != nil {
			return "", err
		}
		rec.Extensions = map[string]*anypb.Any{
			store.SandboxMetadataExtension: {TypeUrl: SandboxMetadataTypeURL, Value: mdJSON},
		}
		if _, err := s.deps.Containers.Update(ctx, rec, "extensions."+store.SandboxMetadataExtension); err != nil {
			return "", fmt.Errorf("container record of sandbox %s: %w", id, err)
		}
	}

	sb := store.NewSandbox(md, store.SandboxStatus{State: store.SandboxReady, Pid: pid, CreatedAt: rec.CreatedAt})
	defer s.nriBlockSync().Unblock() // nri-hooks
	if err := s.nriRunPodSandbox(ctx, sb); err != nil {
		return "", err
	}
	if err := s.sandboxes.Add(sb); err != nil {
		return "", err
	}
	s.emitSandboxEvent(ctx, sb, runtime.ContainerEventType_CONTAINER_CREATED_EVENT)
	s.emitSandboxEvent(ctx, sb, runtime.ContainerEventType_CONTAINER_STARTED_EVENT)
	// A pause process that died before the sandbox was in the store had
	// its exit event find nothing: look once more now that it is.
	if ps, err := task.State(ctx); err == nil && ps.Status == ctrdruntime.StoppedStatus {
		s.sandboxExited(ctx, sb, ps.ExitStatus, ps.ExitedAt)
	}
	return id, nil
}

// writeSandboxFiles makes the files the pod's containers share, but for
// the hosts file (writeHostsFile): hostname, resolv.conf and, unless the
// pod uses the host's IPC, a tmpfs for /dev/shm.
func (s *Service) writeSandboxFiles(md *store.SandboxMetadata, p SandboxPaths) error {
	cfg := md.Config
	if err := os.MkdirAll(filepath.Dir(p.Hostname), 0o755); err != nil {
		return err
	}
	hostname := cfg.GetHostname()
	if hostname == "" {
		var err error
		if hostname, err = os.Hostname(); err != nil {
			return err
		}
	}
	if err := os.WriteFile(p.Hostname, []byte(hostname+"\n"), 0o644); err != nil {
		return err
	}
	if dns := cfg.GetDnsConfig(); dns != nil {
		if err := os.WriteFile(p.Resolv, []byte(resolvConf(dns)), 0o644); err != nil {
			return err
		}
	} else if err := copyFile("/etc/resolv.conf", p.Resolv); err != nil {
		return fmt.Errorf("host's resolv.conf: %w", err)
	}
	if p.Shm == "" {
		return nil
	}
	if err := os.MkdirAll(p.Shm, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("shm", p.Shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC,
		fmt.Sprintf("mode=1777,size=%d", sandboxShmSize)); err != nil {
		return fmt.Errorf("mount /dev/shm tmpfs on %s: %w", p.Shm, err)
	}
	return nil
}

// writeHostsFile writes the pod's hosts file, which names its IP: the
// host's for a pod on the host's network.
func writeHostsFile(md *store.SandboxMetadata, p SandboxPaths) error {
	if hostNetwork(md.Config) {
		if err := copyFile("/etc/hosts", p.Hosts); err != nil {
			return fmt.Errorf("host's hosts file: %w", err)
		}
		return nil
	}
	hostname := md.Config.GetHostname()
	if hostname == "" {
		var err error
		if hostname, err = os.Hostname(); err != nil {
			return err
		}
	}
	return os.WriteFile(p.Hosts, []byte(hostsFile(hostname, md.IP, md.AdditionalIPs)), 0o644)
}

// unmountSandboxShm unmounts the pod's /dev/shm; done already is fine.
func (s *Service) unmountSandboxShm(md *store.SandboxMetadata) error {
	shm := s.sandboxPaths(md).Shm
	if shm == "" {
		return nil
	}
	if err := unix.Unmount(shm, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", shm, err)
	}
	return nil
}

// removeSandboxFiles unmounts /dev/shm and removes the sandbox's dirs.
func (s *Service) removeSandboxFiles(md *store.SandboxMetadata) error {
	if err := s.unmountSandboxShm(md); err != nil {
		return err
	}
	// RemoveAll would go into a tmpfs still mounted; the unmount above
	// makes sure it is not.
	if err := os.RemoveAll(s.sandboxStateDir(md.ID)); err != nil {
		return err
	}
	return os.RemoveAll(s.sandboxRootDir(md.ID))
}

// hostsFile is a pod's /etc/hosts: the usual local names and the pod's
// addresses under its hostname.
func hostsFile(hostname, ip string, more []string) string {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
	for _, a := range append([]string{ip}, more...) {
		if a != "" {
			fmt.Fprintf(&b, "%s\t%s\n", a, hostname)
		}
	}
	return b.String()
}

// resolvConf is a pod's resolv.conf from its DNS config, laid out as
// containerd writes it.
func resolvConf(dns *runtime.DNSConfig) string {
	var b strings.Builder
	if len(dns.GetSearches()) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(dns.GetSearches(), " "))
	}
	for _, s := range dns.GetServers() {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(dns.GetOptions()) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(dns.GetOptions(), " "))
	}
	return b.String()
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

func ignoreNotFound(err error) error {
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}
