package shim

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	bootstrap "github.com/llitfkitfk/containerd/api/runtime/bootstrap/v1"
)

var testFlags = &flags{namespace: "k8s.io", id: "task1", address: "/run/d/d.sock", publishBinary: "/usr/bin/d"}

// runcOptions is runtime options as a daemon sends them: an Any with the
// bare type URL of containerd.runc.v1.Options and some value.
var runcOptions = &anypb.Any{TypeUrl: "containerd.runc.v1.Options", Value: []byte{0x0a, 0x03, 'a', 'b', 'c'}}

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseStartBootstrapProtocol(t *testing.T) {
	dir := "/tmp/s"
	params := &bootstrap.BootstrapParams{
		InstanceId:             "task1",
		Namespace:              "k8s.io",
		LogLevel:               bootstrap.LogLevel_LOG_LEVEL_DEBUG,
		ContainerdGrpcAddress:  "/run/c/c.sock",
		ContainerdTtrpcAddress: "/run/c/c.sock.ttrpc",
		ContainerdBinary:       "/usr/local/bin/containerd",
		Extensions:             []*bootstrap.Extension{{Value: runcOptions}},
		SocketDir:              &dir,
	}
	req, err := parseStartInput(mustMarshal(t, params), testFlags, env(map[string]string{ttrpcAddressEnv: "/env/ttrpc"}))
	if err != nil {
		t.Fatal(err)
	}
	if !req.bootstrap {
		t.Fatal("bootstrap parameters naming the command line's task were not taken for the bootstrap protocol")
	}
	o := req.opts
	if o.Address != "/run/c/c.sock" || o.TTRPCAddress != "/run/c/c.sock.ttrpc" || o.PublishBinary != "/usr/local/bin/containerd" {
		t.Errorf("addresses %q %q %q, want the parameters'", o.Address, o.TTRPCAddress, o.PublishBinary)
	}
	if !o.Debug || req.socketDir != dir || o.ID != "task1" || o.Namespace != "k8s.io" {
		t.Errorf("debug %v, socket dir %q, id %q, namespace %q", o.Debug, req.socketDir, o.ID, o.Namespace)
	}
	if !proto.Equal(o.Options, runcOptions) {
		t.Errorf("options %v, want %v", o.Options, runcOptions)
	}

	// Without a ttrpc address in the parameters, the environment's; at
	// info level, no debug; a bootstrap extension is no runtime option.
	params.ContainerdTtrpcAddress = ""
	params.LogLevel = bootstrap.LogLevel_LOG_LEVEL_INFO
	params.SocketDir = nil
	own, _ := anypb.New(&bootstrap.BootstrapResult{})
	params.Extensions = []*bootstrap.Extension{{Value: own}, {Value: runcOptions}}
	req, err = parseStartInput(mustMarshal(t, params), testFlags, env(map[string]string{ttrpcAddressEnv: "/env/ttrpc"}))
	if err != nil {
		t.Fatal(err)
	}
	if !req.bootstrap || req.opts.TTRPCAddress != "/env/ttrpc" || req.opts.Debug || req.socketDir != "" {
		t.Errorf("bootstrap %v, ttrpc %q, debug %v, socket dir %q", req.bootstrap, req.opts.TTRPCAddress, req.opts.Debug, req.socketDir)
	}
	if !proto.Equal(req.opts.Options, runcOptions) {
		t.Errorf("options %v, want the runc options past the bootstrap extension", req.opts.Options)
	}
}

func TestParseStartOldProtocol(t *testing.T) {
	e := env(map[string]string{ttrpcAddressEnv: "/run/d/d.sock.ttrpc"})

	// containerd 1.6 and our daemon: the options Any. It decodes as
	// BootstrapParams too, naming no task of ours.
	var asParams bootstrap.BootstrapParams
	if err := proto.Unmarshal(mustMarshal(t, runcOptions), &asParams); err != nil {
		t.Fatalf("the test's premise: an Any decodes as bootstrap parameters: %v", err)
	}
	req, err := parseStartInput(mustMarshal(t, runcOptions), testFlags, e)
	if err != nil {
		t.Fatal(err)
	}
	if req.bootstrap {
		t.Fatal("runtime options taken for bootstrap parameters")
	}
	if !proto.Equal(req.opts.Options, runcOptions) {
		t.Errorf("options %v, want %v", req.opts.Options, runcOptions)
	}
	if o := req.opts; o.Address != testFlags.address || o.TTRPCAddress != "/run/d/d.sock.ttrpc" || o.PublishBinary != testFlags.publishBinary {
		t.Errorf("addresses %q %q %q, want the flags' and the environment's", o.Address, o.TTRPCAddress, o.PublishBinary)
	}

	// Bootstrap parameters of another task or namespace are not ours.
	for _, p := range []*bootstrap.BootstrapParams{
		{InstanceId: "other", Namespace: "k8s.io"},
		{InstanceId: "task1", Namespace: "default"},
	} {
		req, err := parseStartInput(mustMarshal(t, p), testFlags, e)
		if err != nil {
			t.Fatal(err)
		}
		if req.bootstrap {
			t.Errorf("parameters for %s/%s taken for task1 in k8s.io", p.Namespace, p.InstanceId)
		}
	}

	// Nothing on stdin: no options.
	req, err = parseStartInput(nil, testFlags, e)
	if err != nil || req.bootstrap || req.opts.Options != nil {
		t.Errorf("empty stdin: %+v, %v", req, err)
	}

	// Neither: a clear error.
	if _, err := parseStartInput([]byte{0xff, 0xff, 0xff}, testFlags, e); err == nil || !strings.Contains(err.Error(), "stdin") {
		t.Errorf("garbage on stdin: %v", err)
	}
}

func TestStartAnswerForms(t *testing.T) {
	const address = "unix:///run/containerd/s/0123abcd"

	// containerd 2.3+: a binary BootstrapResult.
	out, err := startAnswer(address, startRequest{bootstrap: true}, "2")
	if err != nil {
		t.Fatal(err)
	}
	var result bootstrap.BootstrapResult
	if err := proto.Unmarshal(out, &result); err != nil {
		t.Fatal(err)
	}
	if result.Version != 2 || result.Address != address || result.Protocol != "ttrpc" {
		t.Errorf("bootstrap result %v", &result)
	}

	// containerd 2.0-2.2: JSON, as they decode it.
	out, err = startAnswer(address, startRequest{}, "2")
	if err != nil {
		t.Fatal(err)
	}
	var params struct {
		Version  int    `json:"version"`
		Address  string `json:"address"`
		Protocol string `json:"protocol"`
	}
	if err := json.Unmarshal(out, &params); err != nil {
		t.Fatalf("JSON answer %q: %v", out, err)
	}
	if params.Version != 2 || params.Address != address || params.Protocol != "ttrpc" {
		t.Errorf("JSON answer %q", out)
	}

	// containerd 1.6 and our daemon: the whole output, trimmed, is the
	// address.
	out, err = startAnswer(address, startRequest{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) != address {
		t.Errorf("plain answer %q, want %q", out, address)
	}
}

func TestSocketPath(t *testing.T) {
	base, err := socketPath("", "/run/containerd/containerd.sock", "default", "g1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(base, defaultSocketDir+"/") {
		t.Errorf("%s is not in %s", base, defaultSocketDir)
	}
	again, _ := socketPath("", "/run/containerd/containerd.sock", "default", "g1")
	if again != base {
		t.Errorf("same inputs, different paths: %s, %s", base, again)
	}
	seen := map[string]string{base: "base"}
	for name, p := range map[string][3]string{
		"another daemon":    {"/tmp/other/containerd.sock", "default", "g1"},
		"another namespace": {"/run/containerd/containerd.sock", "k8s.io", "g1"},
		"another group":     {"/run/containerd/containerd.sock", "default", "g2"},
	} {
		path, err := socketPath("", p[0], p[1], p[2])
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := seen[path]; ok {
			t.Errorf("%s shares the socket of %s: %s", name, prev, path)
		}
		seen[path] = name
	}

	// A socket_dir is honoured; a long one cuts the name to fit, the
	// same way each time; one too long fails.
	dir := "/" + strings.Repeat("d", 50)
	long, err := socketPath(dir, "a", "b", "c")
	if err != nil {
		t.Fatal(err)
	}
	again, _ = socketPath(dir, "a", "b", "c")
	if !strings.HasPrefix(long, dir+"/") || len(long) > maxSocketPath || long != again {
		t.Errorf("socket in a long dir: %s (%d bytes), again %s", long, len(long), again)
	}
	if _, err := socketPath("/"+strings.Repeat("d", 80), "a", "b", "c"); err == nil {
		t.Error("a socket directory leaving no room for the name was accepted")
	}
	if _, err := socketPath("relative", "a", "b", "c"); err == nil {
		t.Error("a relative socket directory was accepted")
	}
	for path := range seen {
		if len(path) > maxSocketPath {
			t.Errorf("%s is longer than %d bytes", path, maxSocketPath)
		}
	}
}

func TestClaimSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s", "sock")

	l, joined, err := claimSocket(path)
	if err != nil || joined {
		t.Fatalf("first claim: joined %v, %v", joined, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket file: %v, %v", fi, err)
	}

	// A live socket is joined, not replaced.
	_, joined, err = claimSocket(path)
	if err != nil || !joined {
		t.Fatalf("claim of a live socket: joined %v, %v", joined, err)
	}

	// A socket nobody listens on any more is stale: replaced.
	l.SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the test's premise: the stale socket file is there: %v", err)
	}
	l, joined, err = claimSocket(path)
	if err != nil || joined {
		t.Fatalf("claim of a stale socket: joined %v, %v", joined, err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the replacing socket does not listen: %v", err)
	}
	c.Close()
	l.Close()

	// A file that is no socket is left alone.
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := claimSocket(path); err == nil {
		t.Error("a regular file in the socket's place was taken")
	}
	if b, _ := os.ReadFile(path); string(b) != "x" {
		t.Error("the regular file was replaced")
	}
}
