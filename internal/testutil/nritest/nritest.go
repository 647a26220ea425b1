// Package nritest is an NRI plugin for tests, shared by the tests of the
// NRI plugin and of the CRI's hooks into it. It is a package of its own so
// that tests which do not speak NRI do not link its library.
package nritest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
)

// Plugin records each event it gets as "Event key", where key is the pod's
// or container's id (or its name, with ByName), and answers as its fields
// say. Set the fields before Run.
type Plugin struct {
	// ByName keys events by name rather than id.
	ByName bool
	// FailRun and FailCreate refuse RunPodSandbox and CreateContainer.
	FailRun, FailCreate bool
	// Adjust answers CreateContainer; nil asks for nothing.
	Adjust func(*api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate)
	// OnUpdate answers UpdateContainer; nil asks for nothing.
	OnUpdate func(*api.LinuxResources) []*api.ContainerUpdate

	mu     sync.Mutex
	events []string
	ch     chan string
	synced chan []string
}

// Run connects p as plugin 00-<name> to the NRI at socket until the test
// ends, and returns once it is synchronised: the plugin's stub (to ask
// the runtime for updates) and what its Synchronize got, "pod:<id>" for
// each pod, then "ctr:<id>" for each container. The runtime adds the
// plugin (and sends it events) only after that; the caller unblocks its
// sync block then.
func (p *Plugin) Run(t testing.TB, socket, name string) (stub.Stub, []string) {
	t.Helper()
	p.ch = make(chan string, 64)
	p.synced = make(chan []string, 1)
	s, err := stub.New(p, stub.WithPluginName(name), stub.WithPluginIdx("00"), stub.WithSocketPath(socket))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case ids := <-p.synced:
		return s, ids
	case err := <-done:
		t.Fatalf("NRI plugin stopped before it was synchronised: %v", err)
	}
	return nil, nil
}

// Events returns what the plugin got so far.
func (p *Plugin) Events() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

// Wait returns once the plugin got ev (it may come in the background).
func (p *Plugin) Wait(t testing.TB, ev string) {
	t.Helper()
	if slices.Contains(p.Events(), ev) {
		return
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-p.ch:
			if got == ev {
				return
			}
		case <-timeout:
			t.Fatalf("NRI plugin never got %q; got %v", ev, p.Events())
		}
	}
}

func (p *Plugin) add(ev, id, name string) {
	key := id
	if p.ByName {
		key = name
	}
	p.mu.Lock()
	p.events = append(p.events, ev+" "+key)
	p.mu.Unlock()
	select {
	case p.ch <- ev + " " + key:
	default: // nobody waiting this far behind; Events has it
	}
}

func (p *Plugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	var ids []string
	for _, x := range pods {
		ids = append(ids, "pod:"+x.GetId())
	}
	for _, x := range ctrs {
		ids = append(ids, "ctr:"+x.GetId())
	}
	p.synced <- ids
	return nil, nil
}

func (p *Plugin) RunPodSandbox(_ context.Context, x *api.PodSandbox) error {
	p.add("RunPodSandbox", x.GetId(), x.GetName())
	if p.FailRun {
		return errors.New("refused by the test plugin")
	}
	return nil
}

func (p *Plugin) StopPodSandbox(_ context.Context, x *api.PodSandbox) error {
	p.add("StopPodSandbox", x.GetId(), x.GetName())
	return nil
}

func (p *Plugin) RemovePodSandbox(_ context.Context, x *api.PodSandbox) error {
	p.add("RemovePodSandbox", x.GetId(), x.GetName())
	return nil
}

func (p *Plugin) CreateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	p.add("CreateContainer", c.GetId(), c.GetName())
	if p.FailCreate {
		return nil, nil, errors.New("refused by the test plugin")
	}
	if p.Adjust != nil {
		a, u := p.Adjust(c)
		return a, u, nil
	}
	return nil, nil, nil
}

func (p *Plugin) StartContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.add("StartContainer", c.GetId(), c.GetName())
	return nil
}

func (p *Plugin) UpdateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container, res *api.LinuxResources) ([]*api.ContainerUpdate, error) {
	p.add("UpdateContainer", c.GetId(), c.GetName())
	if p.OnUpdate != nil {
		return p.OnUpdate(res), nil
	}
	return nil, nil
}

func (p *Plugin) StopContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) ([]*api.ContainerUpdate, error) {
	p.add("StopContainer", c.GetId(), c.GetName())
	return nil, nil
}

func (p *Plugin) RemoveContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.add("RemoveContainer", c.GetId(), c.GetName())
	return nil
}
