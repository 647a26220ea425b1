// Package cni sets pods' networks up and down through CNI plugins, as
// containerd's CRI does through github.com/containerd/go-cni: the network
// configs of a directory, reloaded when it changes, a loopback network
// (the loopback plugin or, with use_internal_loopback, lo brought up here)
// and the default network on eth0, whose address is the pod's IP.
//
// The plugins are run through libcni (github.com/containernetworking/cni)
// with an exec of our own rather than through go-cni, whose exec cannot be
// replaced: the daemon is a child subreaper whose reaper takes the exit
// status of any child it was not told about (sys.RunManaged), and a CNI
// plugin run by a plain exec.Cmd then fails now and then with "waitid: no
// child processes". go-cni's types (Result, PortMapping, BandWidth, DNS)
// are kept, so the capability arguments and `crictl inspectp`'s cniResult
// read as containerd's.
package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"

	gocni "github.com/containerd/go-cni"
	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/cri/netns"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/sys"
)

// defaultIfName is the interface of the default network in the pod.
const defaultIfName = "eth0"

// ErrNotInitialized is go-cni's: no network config is loaded.
var ErrNotInitialized = gocni.ErrCNINotInitialized

// loopbackConf is the loopback network, as go-cni's.
var loopbackConf = []byte(`{"cniVersion":"0.3.1","name":"cni-loopback","plugins":[{"type":"loopback"}]}`)

// Result is what a pod's network setup gave.
type Result struct {
	// IP is the pod's address on eth0 (chosen by ip_pref), AdditionalIPs
	// its others there.
	IP            string
	AdditionalIPs []string
	// JSON is the CNI result (go-cni's Result) as `crictl inspectp` shows it.
	JSON []byte
}

// Manager is the pods' CNI: one plugin set for the default conf dir and one
// per runtime that names its own (runtimes.<name>.cni_conf_dir).
type Manager struct {
	cfg      *config.Config
	defaults *plugin
	byRT     map[string]*plugin
}

// network is one network a pod joins, on interface ifName.
type network struct {
	conf   *libcni.NetworkConfigList
	ifName string
}

// plugin is the networks of one conf dir, reloaded when the dir changes.
type plugin struct {
	cni    *libcni.CNIConfig
	dir    string
	max    int
	withLo bool

	mu       sync.Mutex
	networks []network
	seen     string // the dir's signature at the last load
	loaded   bool
	loadErr  error // why the last load failed
}

// New returns the manager; a conf dir that is missing or empty is not an
// error (Status says the network is not ready until a config appears).
func New(cfg *config.Config) (*Manager, error) {
	m := &Manager{cfg: cfg, byRT: map[string]*plugin{}}
	m.defaults = newPlugin(cfg, cfg.CNI.ConfDir, cfg.CNI.MaxConfNum)
	for name, r := range cfg.Containerd.Runtimes {
		if r.NetworkPluginConfDir == "" {
			continue
		}
		max := cfg.CNI.MaxConfNum
		if r.NetworkPluginMaxConfNum != 0 {
			max = r.NetworkPluginMaxConfNum
		}
		m.byRT[name] = newPlugin(cfg, r.NetworkPluginConfDir, max)
	}
	return m, nil
}

func newPlugin(cfg *config.Config, dir string, max int) *plugin {
	binDirs := cfg.CNI.BinDirs
	if len(binDirs) == 0 && cfg.CNI.BinDir != "" {
		binDirs = []string{cfg.CNI.BinDir}
	}
	p := &plugin{
		cni: libcni.NewCNIConfig(binDirs, &managedExec{}),
		dir: dir, max: max,
		// A pod joins the loopback network and at least one other; with
		// the internal loopback only the other is a CNI network.
		withLo: !cfg.CNI.UseInternalLoopback,
	}
	p.reload()
	return p
}

// managedExec runs CNI plugins as libcni's default exec does, but so that
// the daemon's reaper leaves their exit status to us.
type managedExec struct{ version.PluginDecoder }

func (*managedExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	c := exec.CommandContext(ctx, pluginPath)
	c.Env = environ
	c.Stdin = bytes.NewReader(stdin)
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := sys.RunManaged(c); err != nil {
		// A plugin reports its failure as a CNI error on stdout.
		var cerr cnitypes.Error
		if json.Unmarshal(stdout.Bytes(), &cerr) == nil && (cerr.Code != 0 || cerr.Msg != "") {
			return nil, &cerr
		}
		return nil, fmt.Errorf("netplugin %s failed: %w: %s", pluginPath, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

func (*managedExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
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
	p.networks, p.loadErr = loadNetworks(p.dir, p.max, p.withLo)
}

// loadNetworks reads the first max configs of dir in lexical order (all
// for max <= 0), as go-cni does: the first is the default network, on
// eth0; the others on eth1, eth2...
func loadNetworks(dir string, max int, withLo bool) ([]network, error) {
	files, err := libcni.ConfFiles(dir, []string{".conf", ".conflist", ".json"})
	switch {
	case err != nil:
		return nil, fmt.Errorf("read cni config dir %s: %w", dir, err)
	case len(files) == 0:
		return nil, fmt.Errorf("no network config found in %s: %w", dir, ErrNotInitialized)
	}
	sort.Strings(files)
	var nets []network
	if withLo {
		lo, err := libcni.ConfListFromBytes(loopbackConf)
		if err != nil {
			return nil, err
		}
		nets = append(nets, network{conf: lo, ifName: "lo"})
	}
	n := 0
	for _, f := range files {
		var list *libcni.NetworkConfigList
		if strings.HasSuffix(f, ".conflist") {
			if list, err = libcni.ConfListFromFile(f); err != nil {
				return nil, fmt.Errorf("cni config list %s: %w", f, err)
			}
		} else {
			// Single-plugin .conf files are deprecated in libcni but
			// still written by operators, and go-cni reads them so.
			//lint:ignore SA1019 as above
			conf, err := libcni.ConfFromFile(f)
			if err != nil {
				return nil, fmt.Errorf("cni config %s: %w", f, err)
			}
			if conf.Network.Type == "" {
				return nil, fmt.Errorf("cni config %s: no plugin type", f)
			}
			//lint:ignore SA1019 as above
			if list, err = libcni.ConfListFromConf(conf); err != nil {
				return nil, fmt.Errorf("cni config %s: %w", f, err)
			}
		}
		if len(list.Plugins) == 0 {
			return nil, fmt.Errorf("cni config list %s has no plugins", f)
		}
		nets = append(nets, network{conf: list, ifName: fmt.Sprintf("eth%d", n)})
		n++
		if max > 0 && n == max {
			break
		}
	}
	return nets, nil
}

// networksReady returns the networks, or why there are none.
func (p *plugin) networksReady() ([]network, error) {
	p.reload()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.loadErr != nil {
		// "cni plugin not initialized" alone does not say why.
		return nil, fmt.Errorf("cni config uninitialized: %w", p.loadErr)
	}
	return p.networks, nil
}

func (p *plugin) status(ctx context.Context) error {
	nets, err := p.networksReady()
	if err != nil {
		return err
	}
	// CNI STATUS; plugins older than spec 1.1.0 are not asked.
	for _, n := range nets {
		if err := p.cni.GetStatusNetworkList(ctx, n.conf); err != nil {
			return fmt.Errorf("cni network %s: %w", n.conf.Name, err)
		}
	}
	return nil
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
func (m *Manager) Status() error { return m.defaults.status(context.Background()) }

// Setup attaches the pod's network namespace at nsPath to the networks of
// its runtime handler and returns its addresses. On failure the caller
// calls Remove, which releases what the plugins that succeeded hold.
func (m *Manager) Setup(ctx context.Context, id, nsPath string, pod *runtime.PodSandboxConfig, handler string) (*Result, error) {
	p := m.plugin(handler)
	nets, err := p.networksReady()
	if err != nil {
		return nil, fmt.Errorf("network for pod %s: %w: %w", id, err, errdefs.ErrFailedPrecondition)
	}
	args, caps, err := PodArgs(id, pod)
	if err != nil {
		return nil, err
	}
	if m.cfg.CNI.UseInternalLoopback {
		if err := netns.Load(nsPath).Do(loopbackUp); err != nil {
			return nil, fmt.Errorf("bring lo up: %w", err)
		}
	}
	results := make([]*types100.Result, len(nets))
	errs := make([]error, len(nets))
	attach := func(i int) {
		rt := &libcni.RuntimeConf{ContainerID: id, NetNS: nsPath, IfName: nets[i].ifName, Args: args, CapabilityArgs: caps}
		r, err := p.cni.AddNetworkList(ctx, nets[i].conf, rt)
		if err == nil {
			results[i], err = types100.NewResultFromResult(r)
		}
		if err != nil {
			errs[i] = fmt.Errorf("cni network %s on %s: %w", nets[i].conf.Name, nets[i].ifName, err)
		}
	}
	if m.cfg.CNI.SetupSerially {
		for i := range nets {
			if attach(i); errs[i] != nil {
				break
			}
		}
	} else {
		var wg sync.WaitGroup
		for i := range nets {
			wg.Add(1)
			go func() { defer wg.Done(); attach(i) }()
		}
		wg.Wait()
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cni setup of pod %s: %w", id, err)
	}
	res, err := combineResults(results)
	if err != nil {
		return nil, fmt.Errorf("cni setup of pod %s: %w", id, err)
	}
	iface := res.Interfaces[defaultIfName]
	if len(iface.IPConfigs) == 0 {
		return nil, fmt.Errorf("cni setup of pod %s: no address on %s", id, defaultIfName)
	}
	out := &Result{}
	out.IP, out.AdditionalIPs = SelectIPs(iface.IPConfigs, m.cfg.CNI.IPPreference)
	if out.JSON, err = json.Marshal(res); err != nil {
		return nil, err
	}
	return out, nil
}

// combineResults gathers the networks' results by interface, as go-cni's
// Result: addresses without an interface index are eth0's.
func combineResults(results []*types100.Result) (*gocni.Result, error) {
	r := &gocni.Result{Interfaces: map[string]*gocni.Config{defaultIfName: {}}}
	for _, res := range results {
		for _, i := range res.Interfaces {
			r.Interfaces[i.Name] = &gocni.Config{Mac: i.Mac, Sandbox: i.Sandbox, SocketPath: i.SocketPath, PciID: i.PciID}
		}
		for _, ip := range res.IPs {
			name := defaultIfName
			if ip.Interface != nil {
				if *ip.Interface < 0 || *ip.Interface >= len(res.Interfaces) {
					return nil, fmt.Errorf("result names interface %d of %d", *ip.Interface, len(res.Interfaces))
				}
				name = res.Interfaces[*ip.Interface].Name
			}
			r.Interfaces[name].IPConfigs = append(r.Interfaces[name].IPConfigs, &gocni.IPConfig{IP: ip.Address.IP, Gateway: ip.Gateway})
		}
		r.DNS = append(r.DNS, res.DNS)
		r.Routes = append(r.Routes, res.Routes...)
	}
	return r, nil
}

// Remove detaches the pod from its networks; nsPath "" when the namespace
// is gone (CNI plugins then release what they hold outside it, such as
// addresses and port mappings).
func (m *Manager) Remove(ctx context.Context, id, nsPath string, pod *runtime.PodSandboxConfig, handler string) error {
	p := m.plugin(handler)
	nets, err := p.networksReady()
	if err != nil {
		return fmt.Errorf("network teardown of pod %s: %w", id, err)
	}
	args, caps, err := PodArgs(id, pod)
	if err != nil {
		return err
	}
	for _, n := range nets {
		rt := &libcni.RuntimeConf{ContainerID: id, NetNS: nsPath, IfName: n.ifName, Args: args, CapabilityArgs: caps}
		if err := p.cni.DelNetworkList(ctx, n.conf, rt); err != nil {
			// As go-cni: a namespace or network already gone is done.
			if (nsPath == "" && strings.Contains(err.Error(), "no such file or directory")) || strings.Contains(err.Error(), "not found") {
				continue
			}
			return fmt.Errorf("cni teardown of pod %s, network %s: %w", id, n.conf.Name, err)
		}
	}
	return nil
}

// PodArgs are the CNI args and capabilities of a pod, as containerd
// passes them through go-cni: the pod's identity (IgnoreUnknown so that
// plugins that know none of them accept them), its host ports, bandwidth
// annotations, DNS and cgroup parent.
func PodArgs(id string, pod *runtime.PodSandboxConfig) ([][2]string, map[string]any, error) {
	md := pod.GetMetadata()
	args := [][2]string{
		{"IgnoreUnknown", "1"},
		{"K8S_POD_NAMESPACE", md.GetNamespace()},
		{"K8S_POD_NAME", md.GetName()},
		{"K8S_POD_INFRA_CONTAINER_ID", id},
		{"K8S_POD_UID", md.GetUid()},
	}
	caps := map[string]any{"io.kubernetes.cri.pod-annotations": pod.GetAnnotations()}
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
		caps["portMappings"] = ports
	}
	bw, err := Bandwidth(pod.GetAnnotations())
	if err != nil {
		return nil, nil, err
	}
	if bw != nil {
		caps["bandwidth"] = *bw
	}
	if dns := pod.GetDnsConfig(); dns != nil {
		caps["dns"] = gocni.DNS{Servers: dns.GetServers(), Searches: dns.GetSearches(), Options: dns.GetOptions()}
	}
	if cg := pod.GetLinux().GetCgroupParent(); cg != "" {
		caps["cgroupPath"] = cg
	}
	return args, caps, nil
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
