package shim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsapi "github.com/llitfkitfk/containerd/api/services/ttrpc/events/v1"
	"github.com/llitfkitfk/containerd/api/types"
	"github.com/llitfkitfk/containerd/events"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/namespaces"
)

const (
	// maxQueuedEvents bounds the events waiting for a daemon that is
	// away; a task's events are a handful, so only a runaway fills it.
	maxQueuedEvents = 4096
	// forwardTimeout bounds one delivery attempt.
	forwardTimeout = 5 * time.Second
	// publishCommandTimeout bounds one run of the publish binary.
	publishCommandTimeout = 15 * time.Second
)

// retryDelays are the pauses between delivery attempts of one event:
// about 20 seconds in all, longer than a daemon takes to restart, after
// which the event is dropped.
var retryDelays = []time.Duration{
	100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
	time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second,
	2 * time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second,
}

// PublisherOpts says where a Publisher sends events.
type PublisherOpts struct {
	// Namespace is the events' namespace when the context of Publish
	// names none.
	Namespace string
	// TTRPCAddress is the daemon's ttrpc address (TTRPC_ADDRESS), which
	// events are forwarded to. Every daemon generation gives one.
	TTRPCAddress string
	// PublishBinary and Address are the daemon's binary and gRPC
	// address: without a ttrpc address, each event is published by
	// running `PublishBinary --address Address publish`.
	PublishBinary, Address string
}

// RemotePublisher delivers events to the daemon one at a time, in the
// order published, from a queue: Publish never waits for the daemon. A
// delivery that fails for want of the daemon (it may be restarting) is
// retried, reconnecting, for about 20 seconds; the event is then logged
// and dropped, and the next one tried.
type RemotePublisher struct {
	opts PublisherOpts

	mu sync.Mutex
	// runCommand runs the publish binary; see CommandRunner.
	runCommand func(*exec.Cmd) error
	queue      []*types.Envelope
	closed     bool
	wake       chan struct{} // a token when the queue went non-empty or closed
	done       chan struct{} // closed when the sender has returned

	// ctx is cancelled, by abandon, when Close gives up on the queue.
	ctx     context.Context
	abandon context.CancelFunc

	client *ttrpc.Client // the sender's connection, nil when there is none
}

// NewPublisher returns a publisher that sends events as opts says, and
// starts its sender. Close it.
func NewPublisher(opts PublisherOpts) *RemotePublisher {
	p := &RemotePublisher{
		opts:       opts,
		runCommand: (*exec.Cmd).Run,
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
	p.ctx, p.abandon = context.WithCancel(context.Background())
	go p.send()
	return p
}

var _ Publisher = (*RemotePublisher)(nil)

// setCommandRunner makes run what runs the publish binary from now on.
func (p *RemotePublisher) setCommandRunner(run func(*exec.Cmd) error) {
	p.mu.Lock()
	p.runCommand = run
	p.mu.Unlock()
}

// Publish queues event under topic, in the namespace of ctx or else the
// publisher's. The event goes as an Any with its bare type URL
// (containerd.events.TaskExit), the form the daemons decode.
func (p *RemotePublisher) Publish(ctx context.Context, topic string, event proto.Message) error {
	ns, ok := namespaces.Namespace(ctx)
	if !ok || ns == "" {
		ns = p.opts.Namespace
	}
	if ns == "" {
		return fmt.Errorf("publish %s: no namespace", topic)
	}
	a, err := events.MarshalEvent(event)
	if err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	env := &types.Envelope{Timestamp: timestamppb.Now(), Namespace: ns, Topic: topic, Event: a}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("publish %s: publisher closed", topic)
	}
	if len(p.queue) >= maxQueuedEvents {
		return fmt.Errorf("publish %s: %d events wait for the daemon already, dropped", topic, len(p.queue))
	}
	p.queue = append(p.queue, env)
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return nil
}

// Close delivers what is queued, waiting until ctx is done at most, and
// stops the publisher; what is left undelivered is dropped and reported.
func (p *RemotePublisher) Close(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	p.mu.Unlock()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
	}
	p.abandon()
	<-p.done
	p.mu.Lock()
	left := len(p.queue)
	p.mu.Unlock()
	if left > 0 {
		return fmt.Errorf("%d events not delivered before the deadline: %w", left, ctx.Err())
	}
	return ctx.Err()
}

// send is the sender: it takes events from the queue's head, one at a
// time, so that they reach the daemon in order.
func (p *RemotePublisher) send() {
	defer close(p.done)
	defer func() {
		if p.client != nil {
			p.client.Close()
		}
	}()
	for {
		p.mu.Lock()
		if len(p.queue) == 0 {
			closed := p.closed
			p.mu.Unlock()
			if closed {
				return
			}
			select {
			case <-p.wake:
			case <-p.ctx.Done():
				return
			}
			continue
		}
		env := p.queue[0]
		p.mu.Unlock()

		if !p.deliver(env) {
			return // abandoned: env stays queued, counted by Close
		}
		p.mu.Lock()
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.mu.Unlock()
	}
}

// deliver tries env until it is delivered, retries run out or the
// publisher is abandoned; it returns false only for the last.
func (p *RemotePublisher) deliver(env *types.Envelope) bool {
	for attempt := 0; ; attempt++ {
		err := p.forward(env)
		if err == nil {
			return true
		}
		if permanent(err) || attempt == len(retryDelays) {
			log.L.WithError(err).WithFields(map[string]any{"topic": env.Topic, "namespace": env.Namespace}).
				Error("dropping event the daemon did not take")
			return true
		}
		log.L.WithError(err).WithField("topic", env.Topic).Debug("publish event, will retry")
		select {
		case <-time.After(retryDelays[attempt]):
		case <-p.ctx.Done():
			return false
		}
	}
}

// forward makes one delivery attempt.
func (p *RemotePublisher) forward(env *types.Envelope) error {
	ctx, cancel := context.WithTimeout(p.ctx, forwardTimeout)
	defer cancel()
	if p.opts.TTRPCAddress == "" {
		return p.runPublishBinary(env)
	}
	if p.client == nil {
		conn, err := dialTTRPC(ctx, p.opts.TTRPCAddress)
		if err != nil {
			return err
		}
		p.client = ttrpc.NewClient(conn)
	}
	// The daemon's events service reads the namespace from the envelope;
	// containerd's also takes it from the call's metadata.
	ctx = ttrpc.WithMetadata(ctx, ttrpc.MD{namespaces.TTRPCHeader: []string{env.Namespace}})
	_, err := eventsapi.NewEventsClient(p.client).Forward(ctx, &eventsapi.ForwardRequest{Envelope: env})
	if err != nil && !permanent(err) {
		// The connection may be dead (the daemon restarted): the next
		// attempt makes a new one.
		p.client.Close()
		p.client = nil
	}
	return err
}

func dialTTRPC(ctx context.Context, address string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", strings.TrimPrefix(address, "unix://"))
	if err != nil {
		return nil, fmt.Errorf("connect to the daemon's ttrpc address: %w", err)
	}
	return conn, nil
}

// runPublishBinary publishes env by running the daemon's binary, as shims
// do for daemons that give no ttrpc address: the event, an Any, on stdin.
func (p *RemotePublisher) runPublishBinary(env *types.Envelope) error {
	if p.opts.PublishBinary == "" {
		return permanentError{errors.New("neither a ttrpc address nor a publish binary to publish events with")}
	}
	data, err := proto.Marshal(env.Event)
	if err != nil {
		return permanentError{fmt.Errorf("marshal event: %w", err)}
	}
	ctx, cancel := context.WithTimeout(p.ctx, publishCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.opts.PublishBinary,
		"--address", p.opts.Address, "publish", "--topic", env.Topic, "--namespace", env.Namespace)
	cmd.Stdin = bytes.NewReader(data)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	p.mu.Lock()
	run := p.runCommand
	p.mu.Unlock()
	err = run(cmd)
	if errors.Is(err, syscall.ECHILD) {
		// A reaper took its exit status: it did run, and exited.
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s publish: %s: %w", p.opts.PublishBinary, strings.TrimSpace(out.String()), err)
	}
	return nil
}

// permanentError is a failure that retrying cannot mend.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// permanent reports whether the daemon answered err, refusing the event:
// it is up, and retrying the same event would only be refused again.
func permanent(err error) bool {
	var pe permanentError
	if errors.As(err, &pe) {
		return true
	}
	s, ok := status.FromError(err)
	if !ok {
		return false
	}
	switch s.Code() {
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.FailedPrecondition,
		codes.PermissionDenied, codes.Unimplemented, codes.OutOfRange:
		return true
	}
	return false
}
