package grpcmetrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"testing"

	grpc_prometheus "github.com/grpc-ecosystem/go-grpc-prometheus"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// testService answers each kind of call, successfully or with the code a
// request's payload names.
type testService struct {
	testpb.UnimplementedTestServiceServer
}

func (testService) UnaryCall(_ context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	switch string(req.GetPayload().GetBody()) {
	case "invalid":
		return nil, status.Error(codes.InvalidArgument, "invalid")
	case "plain":
		return nil, errors.New("a plain error is Unknown")
	case "wrapped":
		return nil, fmt.Errorf("wrapped: %w", status.Error(codes.NotFound, "gone"))
	}
	return &testpb.SimpleResponse{}, nil
}

func (testService) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, ss grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	for range req.GetResponseParameters() {
		if err := ss.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
			return err
		}
	}
	return nil
}

func (testService) StreamingInputCall(ss grpc.ClientStreamingServer[testpb.StreamingInputCallRequest, testpb.StreamingInputCallResponse]) error {
	for {
		if _, err := ss.Recv(); err == io.EOF {
			return status.Error(codes.NotFound, "after reading everything")
		} else if err != nil {
			return err
		}
	}
}

func (testService) FullDuplexCall(ss grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	for {
		if _, err := ss.Recv(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if err := ss.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
			return err
		}
	}
}

// The series are go-grpc-prometheus's, the same names, help texts, labels
// and values after the same calls, histogram included, with every method
// and code present before any call, so that a dashboard or alert written
// for containerd reads this daemon's the same.
func TestSameSeriesAsGoGRPCPrometheus(t *testing.T) {
	theirs := grpc_prometheus.NewServerMetrics()
	theirs.EnableHandlingTimeHistogram()
	theirReg := prometheus.NewPedanticRegistry()
	theirReg.MustRegister(theirs)

	ours := New(func(string) string { return "" })
	ours.EnableHandlingTimeHistogram()
	ourReg := prometheus.NewPedanticRegistry()
	ourReg.MustRegister(ours, ours.HandlingTimeHistogram())

	tagged := 0
	tag := func(ctx context.Context, _ *Method) context.Context { tagged++; return ctx }
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(theirs.UnaryServerInterceptor(), ours.UnaryServerInterceptor(tag)),
		grpc.ChainStreamInterceptor(theirs.StreamServerInterceptor(), ours.StreamServerInterceptor(tag)),
	)
	testpb.RegisterTestServiceServer(srv, testService{})
	theirs.InitializeMetrics(srv)
	ours.Add(srv)

	compare(t, "before any call", theirReg, ourReg)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Stop()
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)
	ctx := context.Background()

	for _, body := range []string{"", "", "invalid", "plain", "wrapped"} {
		client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte(body)}})
	}
	if _, err := client.EmptyCall(ctx, &testpb.Empty{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("EmptyCall: %v, want Unimplemented", err)
	}
	out, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
		ResponseParameters: make([]*testpb.ResponseParameters, 3),
	})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := out.Recv(); err != nil {
			break
		}
	}
	in, err := client.StreamingInputCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	in.Send(&testpb.StreamingInputCallRequest{})
	in.Send(&testpb.StreamingInputCallRequest{})
	if _, err := in.CloseAndRecv(); status.Code(err) != codes.NotFound {
		t.Fatalf("StreamingInputCall: %v, want NotFound", err)
	}
	bidi, err := client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		bidi.Send(&testpb.StreamingOutputCallRequest{})
		if _, err := bidi.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	bidi.CloseSend()
	if _, err := bidi.Recv(); err != io.EOF {
		t.Fatalf("FullDuplexCall: %v, want its end", err)
	}

	compare(t, "after the calls", theirReg, ourReg)
	if tagged != 9 {
		t.Errorf("%d calls were tagged, want 9", tagged)
	}
}

// compare fails the test unless both registries gather the same families
// and series with the same values. Histograms are compared by their
// buckets' bounds and their sample counts: the times differ.
func compare(t *testing.T, when string, want, got prometheus.Gatherer) {
	t.Helper()
	w, g := flatten(t, want), flatten(t, got)
	if len(w) == 0 {
		t.Fatalf("%s: go-grpc-prometheus gathered nothing", when)
	}
	for k, v := range w {
		if g[k] != v {
			t.Errorf("%s: %s is %q, want %q", when, k, g[k], v)
		}
	}
	for k, v := range g {
		if _, ok := w[k]; !ok {
			t.Errorf("%s: extra series %s = %q", when, k, v)
		}
	}
}

func flatten(t *testing.T, g prometheus.Gatherer) map[string]string {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range fams {
		out[f.GetName()] = f.GetType().String() + " " + f.GetHelp()
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			key := f.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = fmt.Sprint(m.GetCounter().GetValue())
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				var bounds []string
				for _, b := range h.GetBucket() {
					bounds = append(bounds, fmt.Sprint(b.GetUpperBound()))
				}
				out[key] = fmt.Sprintf("%d samples, buckets %v", h.GetSampleCount(), bounds)
			default:
				out[key] = m.String()
			}
		}
	}
	return out
}
