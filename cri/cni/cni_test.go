package cni

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	gocni "github.com/containerd/go-cni"

	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/errdefs"
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
	if err := m.plugin("other").status(); err != nil {
		t.Fatalf("runtime other: %v", err)
	}
	if m.plugin("") != m.defaults || m.plugin("runc") != m.defaults {
		t.Fatal("default runtime does not use the default conf dir")
	}
	if err := m.Status(); err == nil {
		t.Fatal("default dir is empty yet ready")
	}
}
