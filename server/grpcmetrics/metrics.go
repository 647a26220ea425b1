// Package grpcmetrics counts the daemon's gRPC calls for Prometheus under
// the names, labels and help texts of go-grpc-prometheus, which containerd
// serves and dashboards are written against: grpc_server_started_total,
// grpc_server_handled_total, grpc_server_msg_received_total,
// grpc_server_msg_sent_total and, when enabled, the
// grpc_server_handling_seconds histogram.
//
// go-grpc-prometheus keeps one labelled series per method and code in
// client_golang's metric vectors: every call hashes its label values four
// times and looks each series up under a lock, and the zero series it
// creates up front for every method and code (20 per method, some 2,300
// for the daemon's 115 methods) held 1.7 MB of the daemon's 7 MB live heap.
// Here a method's counters are plain atomics in a table built once from the
// registered services, found with one map lookup per call, and the series
// are made only when Prometheus collects them: the same output, every
// method and code present from the start, at a fraction of the cost.
package grpcmetrics

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// The label values of grpc_type.
const (
	Unary        = "unary"
	ClientStream = "client_stream"
	ServerStream = "server_stream"
	BidiStream   = "bidi_stream"
)

// numCodes is how many status codes gRPC defines (OK to Unauthenticated);
// every one of them has a handled series for every method from the start.
const numCodes = int(codes.Unauthenticated) + 1

// Method holds one method's counters. Its fields after the counters are
// set once, before the method is served.
type Method struct {
	started, received, sent atomic.Uint64
	handled                 [numCodes]atomic.Uint64
	// other counts codes beyond the defined ones, which only a handler
	// making up its own status could return.
	otherMu sync.Mutex
	other   map[codes.Code]uint64

	// Module is what the server tags the call's log with; it is kept here
	// so that one lookup per call finds both.
	Module string

	typ, service, name string
	histogram          prometheus.Observer // nil unless histograms are on
}

// Metrics is the table of every served method's counters, and the
// Prometheus collector that reports them.
type Metrics struct {
	started, handled, received, sent *prometheus.Desc
	histogram                        *prometheus.HistogramVec // nil unless enabled

	mu      sync.Mutex
	methods atomic.Pointer[map[string]*Method] // replaced, never changed, under mu
	order   []*Method                          // in the order they were added, under mu
	module  func(fullMethod string) string
}

// New returns an empty table. module names the log module of a method.
func New(module func(fullMethod string) string) *Metrics {
	m := &Metrics{
		started: prometheus.NewDesc("grpc_server_started_total",
			"Total number of RPCs started on the server.",
			[]string{"grpc_type", "grpc_service", "grpc_method"}, nil),
		handled: prometheus.NewDesc("grpc_server_handled_total",
			"Total number of RPCs completed on the server, regardless of success or failure.",
			[]string{"grpc_type", "grpc_service", "grpc_method", "grpc_code"}, nil),
		received: prometheus.NewDesc("grpc_server_msg_received_total",
			"Total number of RPC stream messages received on the server.",
			[]string{"grpc_type", "grpc_service", "grpc_method"}, nil),
		sent: prometheus.NewDesc("grpc_server_msg_sent_total",
			"Total number of gRPC stream messages sent by the server.",
			[]string{"grpc_type", "grpc_service", "grpc_method"}, nil),
		module: module,
	}
	empty := map[string]*Method{}
	m.methods.Store(&empty)
	return m
}

// EnableHandlingTimeHistogram adds grpc_server_handling_seconds, with
// client_golang's default buckets as go-grpc-prometheus has them. It must
// be called before Add, and the histogram registered with Prometheus by
// the caller (HandlingTimeHistogram).
func (m *Metrics) EnableHandlingTimeHistogram() {
	m.histogram = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "grpc_server_handling_seconds",
		Help:    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
		Buckets: prometheus.DefBuckets,
	}, []string{"grpc_type", "grpc_service", "grpc_method"})
}

// HandlingTimeHistogram is the histogram collector, nil when not enabled.
func (m *Metrics) HandlingTimeHistogram() prometheus.Collector {
	if m.histogram == nil {
		return nil
	}
	return m.histogram
}

// Add makes a table entry, all counters zero, for every method server
// serves that has none yet.
func (m *Metrics) Add(server *grpc.Server) {
	for service, info := range server.GetServiceInfo() {
		for _, mi := range info.Methods {
			m.method("/"+service+"/"+mi.Name, typeOf(mi.IsClientStream, mi.IsServerStream))
		}
	}
}

// Lookup returns the entry of fullMethod ("/package.Service/Method"), made
// on the spot for a method that was not registered when Add ran.
func (m *Metrics) Lookup(fullMethod string, clientStream, serverStream bool) *Method {
	if e := (*m.methods.Load())[fullMethod]; e != nil {
		return e
	}
	return m.method(fullMethod, typeOf(clientStream, serverStream))
}

func (m *Metrics) method(fullMethod, typ string) *Method {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.methods.Load()
	if e := old[fullMethod]; e != nil {
		return e
	}
	e := &Method{Module: m.module(fullMethod), typ: typ}
	e.service, e.name = splitMethodName(fullMethod)
	if m.histogram != nil {
		e.histogram = m.histogram.WithLabelValues(typ, e.service, e.name)
	}
	// Copy on write: calls read the map without a lock, and methods are
	// added only while plugins register, so the copies are few.
	next := make(map[string]*Method, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[fullMethod] = e
	m.methods.Store(&next)
	m.order = append(m.order, e)
	return e
}

// Started counts a call that began.
func (e *Method) Started() { e.started.Add(1) }

// Received counts a message received.
func (e *Method) Received() { e.received.Add(1) }

// Sent counts a message sent.
func (e *Method) Sent() { e.sent.Add(1) }

// Handled counts a call that ended with code, and observes the time since
// start if the histogram is on (start is needed only if Timed).
func (e *Method) Handled(code codes.Code, start time.Time) {
	if int(code) < numCodes {
		e.handled[code].Add(1)
	} else {
		e.otherMu.Lock()
		if e.other == nil {
			e.other = map[codes.Code]uint64{}
		}
		e.other[code]++
		e.otherMu.Unlock()
	}
	if e.histogram != nil {
		e.histogram.Observe(time.Since(start).Seconds())
	}
}

// Timed reports whether the histogram needs the call's start time.
func (e *Method) Timed() bool { return e.histogram != nil }

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.started
	ch <- m.handled
	ch <- m.received
	ch <- m.sent
}

// Collect implements prometheus.Collector: every method's counters, the
// handled ones for every code, zero or not.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	methods := m.order[:len(m.order):len(m.order)]
	m.mu.Unlock()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, e := range methods {
		counter(m.started, e.started.Load(), e.typ, e.service, e.name)
		counter(m.received, e.received.Load(), e.typ, e.service, e.name)
		counter(m.sent, e.sent.Load(), e.typ, e.service, e.name)
		for c := range e.handled {
			counter(m.handled, e.handled[c].Load(), e.typ, e.service, e.name, codes.Code(c).String())
		}
		e.otherMu.Lock()
		for c, n := range e.other {
			counter(m.handled, n, e.typ, e.service, e.name, c.String())
		}
		e.otherMu.Unlock()
	}
}

func typeOf(clientStream, serverStream bool) string {
	switch {
	case !clientStream && !serverStream:
		return Unary
	case clientStream && !serverStream:
		return ClientStream
	case !clientStream && serverStream:
		return ServerStream
	}
	return BidiStream
}

// splitMethodName splits "/package.Service/Method" as go-grpc-prometheus
// does, "unknown" for both when there is no second slash.
func splitMethodName(fullMethod string) (string, string) {
	fullMethod = strings.TrimPrefix(fullMethod, "/")
	if service, method, ok := strings.Cut(fullMethod, "/"); ok {
		return service, method
	}
	return "unknown", "unknown"
}
