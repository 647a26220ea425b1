package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"

	versionapi "github.com/llitfkitfk/containerd/api/services/version/v1"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/plugin"
	_ "github.com/llitfkitfk/containerd/services/version"
)

var errBroken = errors.New("broken on purpose")

func init() {
	plugin.Register(&plugin.Registration{
		Type: "io.containerd.test.v1", ID: "skipper",
		InitFn: func(*plugin.InitContext) (interface{}, error) {
			return nil, errors.Join(errors.New("kernel lacks it"), plugin.ErrSkipPlugin)
		},
	})
	plugin.Register(&plugin.Registration{
		Type: "io.containerd.test.v1", ID: "failer",
		InitFn: func(*plugin.InitContext) (interface{}, error) { return nil, errBroken },
	})
}

func testConfig(t *testing.T) *Config {
	dir := t.TempDir()
	c := DefaultConfig()
	c.Root = filepath.Join(dir, "root")
	c.State = filepath.Join(dir, "state")
	c.GRPC.Address = filepath.Join(dir, "c.sock")
	c.Debug.Address = ""
	return c
}

func TestSkipAndFailureAreRecorded(t *testing.T) {
	s, err := New(context.Background(), testConfig(t))
	if err != nil {
		t.Fatalf("optional plugin failures stopped start-up: %v", err)
	}
	defer s.Stop(context.Background())
	got := map[string]error{}
	for _, p := range s.Plugins() {
		got[p.Registration.ID] = p.Err()
	}
	if err, ok := got["skipper"]; !ok || !plugin.IsSkipPlugin(err) {
		t.Errorf("skipper: %v, want a skip", err)
	}
	if err, ok := got["failer"]; !ok || !errors.Is(err, errBroken) || plugin.IsSkipPlugin(err) {
		t.Errorf("failer: %v, want its failure", err)
	}
	if err, ok := got["version"]; !ok || err != nil {
		t.Errorf("version: loaded %v, err %v", ok, err)
	}
}

func TestRequiredPlugins(t *testing.T) {
	for _, tc := range []struct{ uri, want string }{
		{"io.containerd.test.v1.failer", "broken on purpose"},
		{"io.containerd.test.v1.skipper", "skip plugin"},
		{"io.containerd.test.v1.absent", "not included"},
	} {
		c := testConfig(t)
		c.RequiredPlugins = []string{tc.uri}
		_, err := New(context.Background(), c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("required %s: err = %v, want %q", tc.uri, err, tc.want)
		}
	}
	c := testConfig(t)
	c.RequiredPlugins = []string{"io.containerd.grpc.v1.version"}
	s, err := New(context.Background(), c)
	if err != nil {
		t.Fatalf("required plugin that loads: %v", err)
	}
	s.Stop(context.Background())
}

func TestDisabledPluginIsNotLoaded(t *testing.T) {
	c := testConfig(t)
	c.DisabledPlugins = []string{"io.containerd.test.v1.failer"}
	s, err := New(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	for _, p := range s.Plugins() {
		if p.Registration.ID == "failer" {
			t.Fatal("disabled plugin was loaded")
		}
	}
}

func TestInterceptorTagsModule(t *testing.T) {
	var buf bytes.Buffer
	logger := logrus.New()
	logger.SetOutput(&buf)
	ctx := log.WithLogger(context.Background(), logrus.NewEntry(logger))
	for method, want := range map[string]string{
		"/containerd.services.version.v1.Version/Version":     "module=containerd/version",
		"/containerd.services.snapshots.v1.Snapshots/Prepare": "module=containerd/snapshot",
		"/grpc.health.v1.Health/Check":                        "module=containerd\n",
		"/runtime.v1.RuntimeService/RunPodSandbox":            "module=containerd/cri",
	} {
		buf.Reset()
		_, err := unaryInterceptor(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method},
			func(ctx context.Context, _ interface{}) (interface{}, error) {
				log.G(ctx).Info("handled")
				return nil, nil
			})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), want) {
			t.Errorf("%s logged %q, want %q", method, buf.String(), want)
		}
	}
	buf.Reset()
	stream := &ctxStream{ctx: ctx}
	err := streamInterceptor(nil, stream, &grpc.StreamServerInfo{FullMethod: "/containerd.services.events.v1.Events/Subscribe"},
		func(_ interface{}, ss grpc.ServerStream) error {
			log.G(ss.Context()).Info("streaming")
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "module=containerd/events") {
		t.Errorf("stream logged %q", buf.String())
	}
}

// ctxStream is a server stream that has only a context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

// startServer makes a server from testConfig, serving gRPC on its address
// until the test ends.
func startServer(t *testing.T) (*Server, *Config) {
	t.Helper()
	c := testConfig(t)
	s, err := New(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	serve(t, s.ServeGRPC, "unix", c.GRPC.Address)
	return s, c
}

func serve(t *testing.T, fn func(net.Listener) error, network, addr string) net.Listener {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	go fn(l)
	return l
}

func httpGet(t *testing.T, client *http.Client, url string) string {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}

func TestMetricsAndDebugEndpoints(t *testing.T) {
	s, c := startServer(t)
	conn, err := grpc.NewClient("unix://"+c.GRPC.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := versionapi.NewVersionClient(conn).Version(context.Background(), &emptypb.Empty{}); err != nil {
		t.Fatal(err)
	}

	ml := serve(t, s.ServeMetrics, "tcp", "127.0.0.1:0")
	body := httpGet(t, http.DefaultClient, "http://"+ml.Addr().String()+"/v1/metrics")
	want := `grpc_server_handled_total{grpc_code="OK",grpc_method="Version",grpc_service="containerd.services.version.v1.Version",grpc_type="unary"}`
	if !strings.Contains(body, want) {
		t.Fatalf("metrics lack %s", want)
	}

	debugSock := filepath.Join(t.TempDir(), "debug.sock")
	serve(t, s.ServeDebug, "unix", debugSock)
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", debugSock)
		},
	}}
	if body := httpGet(t, client, "http://debug/debug/pprof/"); !strings.Contains(body, "goroutine") {
		t.Fatalf("pprof index lacks goroutine profile: %.200s", body)
	}
	if body := httpGet(t, client, "http://debug/debug/pprof/goroutine?debug=1"); !strings.Contains(body, "goroutine profile") {
		t.Fatalf("goroutine profile: %.200s", body)
	}
	if body := httpGet(t, client, "http://debug/debug/vars"); !strings.Contains(body, `"cmdline"`) {
		t.Fatalf("expvar lacks cmdline: %.200s", body)
	}
}
