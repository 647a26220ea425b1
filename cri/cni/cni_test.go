package cni

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	gocni "github.com/containerd/go-cni"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/sys"
)

func ips(ss ...string) []*gocni.IPConfig {
	var out []*gocni.IPConfig
	for _, s := range ss {
		out = append(out, &gocni.IPConfig{IP: net.ParseIP(s)})
	}
	return out
}

func TestSelectIPs(t *testing.T) {
	dual := ips("fd00::5", "10.88.0.5", "fd00::6")
	for _, tc := range []struct {
		pref string
		ip   string
		rest []string
	}{
		{"", "10.88.0.5", []string{"fd00::5", "fd00::6"}},
		{"ipv4", "10.88.0.5", []string{"fd00::5", "fd00::6"}},
		{"ipv6", "fd00::5", []string{"10.88.0.5", "fd00::6"}},
		{"cni", "fd00::5", []string{"10.88.0.5", "fd00::6"}},
	} {
		ip, rest := SelectIPs(dual, tc.pref)
		if ip != tc.ip || !reflect.DeepEqual(rest, tc.rest) {
			t.Errorf("pref %q: %s %v, want %s %v", tc.pref, ip, rest, tc.ip, tc.rest)
		}
	}
	// No address of the preferred family: the first one.
	if ip, rest := SelectIPs(ips("fd00::1"), "ipv4"); ip != "fd00::1" || rest != nil {
		t.Errorf("v6 only: %s %v", ip, rest)
	}
}

func TestBandwidth(t *testing.T) {
	bw, err := Bandwidth(map[string]string{IngressBandwidthAnnotation: "10M", EgressBandwidthAnnotation: "1Ki", "other": "x"})
	if err != nil {
		t.Fatal(err)
	}
	if bw.IngressRate != 10_000_000 || bw.EgressRate != 1024 || bw.IngressBurst == 0 || bw.EgressBurst == 0 {
		t.Fatalf("%+v", bw)
	}
	if bw, err := Bandwidth(map[string]string{"a": "b"}); bw != nil || err != nil {
		t.Fatalf("no annotations: %v %v", bw, err)
	}
	for _, bad := range []string{"fast", "10X", "-5M", "1", "2E", "1e9"} {
		_, err := Bandwidth(map[string]string{EgressBandwidthAnnotation: bad})
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), EgressBandwidthAnnotation) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func testConfig(confDir string) *config.Config {
	cfg := config.Default()
	cfg.CNI.ConfDir = confDir
	cfg.CNI.BinDirs = []string{"/nonexistent"}
	return cfg
}

// Status follows the conf dir: not ready while it is empty, ready once a
// config is written, not ready again once it is removed.
func TestStatusReloads(t *testing.T) {
	dir := t.TempDir()
	m, err := New(testConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	err = m.Status()
	if err == nil || !strings.Contains(err.Error(), "no network config found in "+dir) {
		t.Fatalf("empty dir: %v", err)
	}
	conf := filepath.Join(dir, "10-test.conflist")
	if err := os.WriteFile(conf, []byte(`{"cniVersion":"1.0.0","name":"test","plugins":[{"type":"bridge"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Status(); err != nil {
		t.Fatalf("with a config: %v", err)
	}
	if err := os.Remove(conf); err != nil {
		t.Fatal(err)
	}
	if err := m.Status(); err == nil {
		t.Fatal("config removed: still ready")
	}
}

// A runtime with a conf dir of its own uses it; others use the default.
func TestPerRuntimeConfDir(t *testing.T) {
	dir, rtDir := t.TempDir(), t.TempDir()
	cfg := testConfig(dir)
	cfg.Containerd.Runtimes["other"] = config.Runtime{Type: config.DefaultRuntimeType, NetworkPluginConfDir: rtDir}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rtDir, "a.conf"), []byte(`{"cniVersion":"1.0.0","name":"rt","type":"bridge"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.plugin("other").status(context.Background()); err != nil {
		t.Fatalf("runtime other: %v", err)
	}
	if m.plugin("") != m.defaults || m.plugin("runc") != m.defaults {
		t.Fatal("default runtime does not use the default conf dir")
	}
	if err := m.Status(); err == nil {
		t.Fatal("default dir is empty yet ready")
	}
}

// fakePlugin is a CNI plugin that logs each call (command, interface,
// args, stdin) and answers ADD with two addresses on the interface; with
// FAIL set in the network config it fails as plugins do.
const fakePlugin = `#!/bin/sh
in=$(cat)
echo "$CNI_COMMAND $CNI_IFNAME $CNI_ARGS $in" >> %q
v=$(echo "$in" | sed -n 's/.*"cniVersion": *"\([^"]*\)".*/\1/p')
case "$in" in *'"fail":true'*) echo '{"cniVersion":"1.0.0","code":11,"msg":"no more addresses"}'; exit 1;; esac
case $CNI_COMMAND in
ADD)
	if [ "$CNI_IFNAME" = lo ]; then
		printf '{"cniVersion":"%%s","interfaces":[{"name":"lo","sandbox":"%%s"}]}' "$v" "$CNI_NETNS"
	else
		printf '{"cniVersion":"%%s","interfaces":[{"name":"%%s","sandbox":"%%s"}],"ips":[{"address":"fd00::5/64","interface":0},{"address":"10.1.2.3/24","interface":0}]}' "$v" "$CNI_IFNAME" "$CNI_NETNS"
	fi;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}';;
esac
`

// Setup and Remove run the plugins with the pod's args and capabilities,
// and gather eth0's addresses, with the test process reaping its
// children as the daemon does: the plugins' exits must still reach us.
func TestSetupRemove(t *testing.T) {
	sys.StartReaper()
	dir := t.TempDir()
	bin, conf, logf := filepath.Join(dir, "bin"), filepath.Join(dir, "net.d"), filepath.Join(dir, "calls")
	for _, d := range []string{bin, conf} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"fake", "loopback"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(fmt.Sprintf(fakePlugin, logf)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(conf, "10-fake.conflist"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"cniVersion":"1.0.0","name":"fakenet","plugins":[{"type":"fake","capabilities":{"portMappings":true,"dns":true}}]}`)
	cfg := testConfig(conf)
	cfg.CNI.BinDirs = []string{bin}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pod := &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: "web", Namespace: "prod", Uid: "u-1"},
		PortMappings: []*runtime.PortMapping{{ContainerPort: 80, HostPort: 8080}, {ContainerPort: 81}},
		DnsConfig:    &runtime.DNSConfig{Servers: []string{"10.0.0.10"}},
	}
	for i := 0; i < 5; i++ { // more runs, more chances for the reaper to interfere
		res, err := m.Setup(context.Background(), "pod1", "/var/run/netns/x", pod, "")
		if err != nil {
			t.Fatal(err)
		}
		if res.IP != "10.1.2.3" || len(res.AdditionalIPs) != 1 || res.AdditionalIPs[0] != "fd00::5" {
			t.Fatalf("ips %s %v", res.IP, res.AdditionalIPs)
		}
		if err := m.Remove(context.Background(), "pod1", "", pod, ""); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(logf)
	if err != nil {
		t.Fatal(err)
	}
	calls := string(b)
	for _, want := range []string{
		"ADD eth0 IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=pod1;K8S_POD_UID=u-1",
		"ADD lo ", "DEL eth0 ", "DEL lo ",
		`"portMappings":[{"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":""}]`,
		`"dns":{"Servers":["10.0.0.10"]`,
	} {
		if !strings.Contains(calls, want) {
			t.Errorf("calls lack %q:\n%s", want, calls)
		}
	}
	if strings.Contains(calls, `"ContainerPort":81`) {
		t.Error("a port without a host port was mapped")
	}

	write(`{"cniVersion":"1.0.0","name":"fakenet","plugins":[{"type":"fake","fail":true}]}`)
	if _, err := m.Setup(context.Background(), "pod2", "/var/run/netns/y", pod, ""); err == nil || !strings.Contains(err.Error(), "no more addresses") {
		t.Fatalf("failing plugin: %v", err)
	}
}
