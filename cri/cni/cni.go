// Package cni sets pods' networks up and down through CNI plugins
// (github.com/containerd/go-cni), as containerd's CRI does: the network
// configs of a directory, reloaded when it changes, a loopback network
// (the loopback plugin or, with use_internal_loopback, lo brought up here)
// and the default network on eth0, whose address is the pod's IP.
package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"

	gocni "github.com/containerd/go-cni"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/cri/netns"
	"github.com/llitfkitfk/containerd/errdefs"
)

// defaultIfName is the interface of the default network in the pod.
const defaultIfName = "eth0"

// Result is what a pod's network setup gave.
type Result struct {
	// IP is the pod's address on eth0 (chosen by ip_pref), AdditionalIPs
	// its others there.
	IP            string
	AdditionalIPs []string
	// JSON is the CNI result as `crictl inspectp` shows it.
	JSON []byte
}

// Manager is the pods' CNI: one plugin set for the default conf dir and one
// per runtime that names its own (runtimes.<name>.cni_conf_dir).
type Manager struct {
	cfg      *config.Config
	defaults *plugin
	byRT     map[string]*plugin
}

// plugin is go-cni over one conf dir, reloaded when the dir changes.
type plugin struct {
	cni     gocni.CNI
	dir     string
	loadOps []gocni.Opt

	mu      sync.Mutex
	seen    string // the dir's signature at the last load
	loaded  bool
	loadErr error // why the last load failed
}

// New returns the manager; a conf dir that is missing or empty is not an
// error (Status says the network is not ready until a config appears).
func New(cfg *config.Config) (*Manager, error) {
	m := &Manager{cfg: cfg, byRT: map[string]*plugin{}}
	var err error
	if m.defaults, err = newPlugin(cfg, cfg.CNI.ConfDir, cfg.CNI.MaxConfNum); err != nil {
		return nil, err
	}
	for name, r := range cfg.Containerd.Runtimes {
		if r.NetworkPluginConfDir == "" {
			continue
		}
		max := cfg.CNI.MaxConfNum
		if r.NetworkPluginMaxConfNum != 0 {
			max = r.NetworkPluginMaxConfNum
		}
		if m.byRT[name], err = newPlugin(cfg, r.NetworkPluginConfDir, max); err != nil {
			return nil, fmt.Errorf("runtime %s: %w", name, err)
		}
	}
	return m, nil
}

func newPlugin(cfg *config.Config, dir string, max int) (*plugin, error) {
	binDirs := cfg.CNI.BinDirs
	if len(binDirs) == 0 && cfg.CNI.BinDir != "" {
		binDirs = []string{cfg.CNI.BinDir}
	}
	// A pod joins the loopback network and at least one other; with the
	// internal loopback only the other is a CNI network.
	minNets := 2
	loadOps := []gocni.Opt{gocni.WithLoNetwork, gocni.WithDefaultConf}
	if cfg.CNI.UseInternalLoopback {
		minNets = 1
		loadOps = []gocni.Opt{gocni.WithDefaultConf}
	}
	c, err := gocni.New(gocni.WithMinNetworkCount(minNets),
		gocni.WithPluginConfDir(dir),
		gocni.WithPluginMaxConfNum(max),
		gocni.WithPluginDir(binDirs),
		gocni.WithInterfacePrefix("eth"))
	if err != nil {
		return nil, fmt.Errorf("cni: %w", err)
	}
	p := &plugin{cni: c, dir: dir, loadOps: loadOps}
	p.reload()
	return p, nil
}

// signature sums up the conf dir's files (names, sizes, times), so that a
// change, an addition or a removal reloads the configs.
func signature(dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "%s %d %d\n", e.Name(), info.Size(), info.ModTime().UnixNano())
	}
	return b.String()
}

// reload loads the conf dir again if it changed since the last load.
// containerd watches the dir with inotify; checking on each use is as
// current for the kubelet, which asks Status every few seconds.
func (p *plugin) reload() {
	p.mu.Lock()
	defer p.mu.Unlock()
	sig := signature(p.dir)
	if p.loaded && sig == p.seen {
		return
	}
	p.seen, p.loaded = sig, true
	p.loadErr = p.cni.Load(p.loadOps...)
}

func (p *plugin) status() error {
	p.reload()
	err := p.cni.Status()
	if err == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.loadErr != nil && errors.Is(err, gocni.ErrCNINotInitialized) {
		// "cni plugin not initialized" alone does not say why.
		return fmt.Errorf("cni config uninitialized: %w", p.loadErr)
	}
	return err
}

func (m *Manager) plugin(handler string) *plugin {
	if handler == "" {
		handler = m.cfg.Containerd.DefaultRuntimeName
	}
	if p, ok := m.byRT[handler]; ok {
		return p
	}
	return m.defaults
}

// Status is nil when the default network config is loaded, else why not.
func (m *Manager) Status() error { return m.defaults.status() }

// Setup attaches the pod's network namespace at nsPath to the networks of
// its runtime handler and returns its addresses.
func (m *Manager) Setup(ctx context.Context, id, nsPath string, pod *runtime.PodSandboxConfig, handler string) (*Result, error) {
	p := m.plugin(handler)
	if err := p.status(); err != nil {
		return nil, fmt.Errorf("network for pod %s: %w: %w", id, err, errdefs.ErrFailedPrecondition)
	}
	opts, err := NamespaceOpts(id, pod)
	if err != nil {
		return nil, err
	}
	if m.cfg.CNI.UseInternalLoopback {
		if err := netns.Load(nsPath).Do(loopbackUp); err != nil {
			return nil, fmt.Errorf("bring lo up: %w", err)
		}
	}
	var res *gocni.Result
	if m.cfg.CNI.SetupSerially {
		res, err = p.cni.SetupSerially(ctx, id, nsPath, opts...)
	} else {
		res, err = p.cni.Setup(ctx, id, nsPath, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("cni setup of pod %s: %w", id, err)
	}
	iface, ok := res.Interfaces[defaultIfName]
	if !ok || len(iface.IPConfigs) == 0 {
		// Undo what the plugins did: the caller sees a failure.
		if rerr := p.cni.Remove(ctx, id, nsPath, opts...); rerr != nil {
			err = rerr
		}
		return nil, fmt.Errorf("cni setup of pod %s: no address on %s (undo: %v)", id, defaultIfName, err)
	}
	out := &Result{}
	out.IP, out.AdditionalIPs = SelectIPs(iface.IPConfigs, m.cfg.CNI.IPPreference)
	if out.JSON, err = json.Marshal(res); err != nil {
		return nil, err
	}
	return out, nil
}

// Remove detaches the pod from its networks; nsPath "" when the namespace
// is gone (CNI plugins then release what they hold outside it, such as
// addresses and port mappings).
func (m *Manager) Remove(ctx context.Context, id, nsPath string, pod *runtime.PodSandboxConfig, handler string) error {
	p := m.plugin(handler)
	if err := p.status(); err != nil {
		return fmt.Errorf("network teardown of pod %s: %w", id, err)
	}
	opts, err := NamespaceOpts(id, pod)
	if err != nil {
		return err
	}
	if err := p.cni.Remove(ctx, id, nsPath, opts...); err != nil {
		return fmt.Errorf("cni teardown of pod %s: %w", id, err)
	}
	return nil
}

// NamespaceOpts are the CNI args and capabilities of a pod, as containerd
// passes them: the pod's identity (IgnoreUnknown so that plugins that know
// none of them accept them), its host ports, bandwidth annotations, DNS and
// cgroup parent.
func NamespaceOpts(id string, pod *runtime.PodSandboxConfig) ([]gocni.NamespaceOpts, error) {
	md := pod.GetMetadata()
	opts := []gocni.NamespaceOpts{
		gocni.WithLabels(map[string]string{
			"K8S_POD_NAMESPACE":          md.GetNamespace(),
			"K8S_POD_NAME":               md.GetName(),
			"K8S_POD_INFRA_CONTAINER_ID": id,
			"K8S_POD_UID":                md.GetUid(),
			"IgnoreUnknown":              "1",
		}),
		gocni.WithCapability("io.kubernetes.cri.pod-annotations", pod.GetAnnotations()),
	}
	var ports []gocni.PortMapping
	for _, pm := range pod.GetPortMappings() {
		if pm.GetHostPort() <= 0 {
			continue
		}
		ports = append(ports, gocni.PortMapping{
			HostPort:      pm.GetHostPort(),
			ContainerPort: pm.GetContainerPort(),
			Protocol:      strings.ToLower(pm.GetProtocol().String()),
			HostIP:        pm.GetHostIp(),
		})
	}
	if len(ports) > 0 {
		opts = append(opts, gocni.WithCapabilityPortMap(ports))
	}
	bw, err := Bandwidth(pod.GetAnnotations())
	if err != nil {
		return nil, err
	}
	if bw != nil {
		opts = append(opts, gocni.WithCapabilityBandWidth(*bw))
	}
	if dns := pod.GetDnsConfig(); dns != nil {
		opts = append(opts, gocni.WithCapabilityDNS(gocni.DNS{
			Servers: dns.GetServers(), Searches: dns.GetSearches(), Options: dns.GetOptions(),
		}))
	}
	if cg := pod.GetLinux().GetCgroupParent(); cg != "" {
		opts = append(opts, gocni.WithCapabilityCgroupPath(cg))
	}
	return opts, nil
}

// The pod annotations of Kubernetes' traffic shaping, in bits per second.
const (
	IngressBandwidthAnnotation = "kubernetes.io/ingress-bandwidth"
	EgressBandwidthAnnotation  = "kubernetes.io/egress-bandwidth"
)

// Bandwidth reads the bandwidth annotations (nil if there are none); the
// limits Kubernetes accepts are 1k to 1P.
func Bandwidth(annotations map[string]string) (*gocni.BandWidth, error) {
	var bw *gocni.BandWidth
	for _, a := range []string{IngressBandwidthAnnotation, EgressBandwidthAnnotation} {
		v, ok := annotations[a]
		if !ok {
			continue
		}
		rate, err := parseQuantity(v)
		if err != nil {
			return nil, fmt.Errorf("annotation %s=%q: %v: %w", a, v, err, errdefs.ErrInvalidArgument)
		}
		if rate < 1e3 || rate > 1e15 {
			return nil, fmt.Errorf("annotation %s=%q: out of range 1k to 1P: %w", a, v, errdefs.ErrInvalidArgument)
		}
		if bw == nil {
			bw = &gocni.BandWidth{}
		}
		if a == IngressBandwidthAnnotation {
			bw.IngressRate, bw.IngressBurst = rate, math.MaxUint32
		} else {
			bw.EgressRate, bw.EgressBurst = rate, math.MaxUint32
		}
	}
	return bw, nil
}

// parseQuantity parses a Kubernetes quantity of the forms used for
// bandwidth: an integer or decimal with an optional SI (k, M, G, T, P, E)
// or binary (Ki, Mi, ...) suffix.
func parseQuantity(s string) (uint64, error) {
	num, mult := s, 1.0
	for _, sfx := range []struct {
		s string
		m float64
	}{
		{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"Pi", 1 << 50}, {"Ei", 1 << 60},
		{"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15}, {"E", 1e18},
	} {
		if strings.HasSuffix(s, sfx.s) {
			num, mult = strings.TrimSuffix(s, sfx.s), sfx.m
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || strings.ContainsAny(num, "eEx") {
		return 0, errors.New("not a quantity")
	}
	v := f * mult
	if v >= math.MaxUint64 {
		return 0, errors.New("too large")
	}
	return uint64(math.Ceil(v)), nil
}

// SelectIPs picks the pod's IP among eth0's by preference ("ipv4", the
// default, or "ipv6": the first of that family; "cni": the first), the
// others following in CNI's order.
func SelectIPs(ips []*gocni.IPConfig, pref string) (string, []string) {
	if len(ips) == 0 {
		return "", nil
	}
	pick := 0
	if pref != "cni" {
		want4 := pref != "ipv6"
		for i, ip := range ips {
			if (ip.IP.To4() != nil) == want4 {
				pick = i
				break
			}
		}
	}
	var rest []string
	for i, ip := range ips {
		if i != pick {
			rest = append(rest, ip.IP.String())
		}
	}
	return ips[pick].IP.String(), rest
}

// loopbackUp brings lo up in the calling thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	return nil
}
