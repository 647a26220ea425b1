package scheduler

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/llitfkitfk/containerd/gc"
	"github.com/llitfkitfk/containerd/plugin"
)

// fakeCollector counts collections; each pauses for pause.
type fakeCollector struct {
	pause time.Duration
	err   error

	mu        sync.Mutex
	callbacks []func(bool)
	runs      int
	ran       chan struct{}
}

func newFake() *fakeCollector { return &fakeCollector{ran: make(chan struct{}, 100)} }

func (c *fakeCollector) RegisterMutationCallback(fn func(bool)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.callbacks = append(c.callbacks, fn)
}

func (c *fakeCollector) GarbageCollect(context.Context) (gc.Stats, error) {
	c.mu.Lock()
	c.runs++
	c.mu.Unlock()
	c.ran <- struct{}{}
	return gc.Stats{MetaD: c.pause}, c.err
}

func (c *fakeCollector) mutate(dirty bool) {
	c.mu.Lock()
	cbs := c.callbacks
	c.mu.Unlock()
	for _, cb := range cbs {
		cb(dirty)
	}
}

func (c *fakeCollector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs
}

// start runs a scheduler for c until the test ends.
func start(t *testing.T, c Collector, cfg Config) *Scheduler {
	t.Helper()
	s := New(c, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s
}

func waitRun(t *testing.T, c *fakeCollector, within time.Duration) {
	t.Helper()
	select {
	case <-c.ran:
	case <-time.After(within):
		t.Fatalf("no collection within %v", within)
	}
}

func noRun(t *testing.T, c *fakeCollector, during time.Duration) {
	t.Helper()
	select {
	case <-c.ran:
		t.Fatalf("unexpected collection")
	case <-time.After(during):
	}
}

// quiet is a config that runs nothing unless asked.
func quiet() Config {
	return Config{PauseThreshold: 0.02}
}

func TestStartupCollection(t *testing.T) {
	c := newFake()
	cfg := quiet()
	cfg.StartupDelay = Duration(10 * time.Millisecond)
	start(t, c, cfg)
	waitRun(t, c, 2*time.Second)
	noRun(t, c, 100*time.Millisecond)
}

func TestDeletionTriggersCollection(t *testing.T) {
	c := newFake()
	start(t, c, quiet())
	c.mutate(false)
	noRun(t, c, 50*time.Millisecond)
	c.mutate(true)
	waitRun(t, c, 2*time.Second)
}

func TestMutationThreshold(t *testing.T) {
	c := newFake()
	cfg := quiet()
	cfg.MutationThreshold = 3
	start(t, c, cfg)
	c.mutate(false)
	c.mutate(false)
	noRun(t, c, 50*time.Millisecond)
	c.mutate(false)
	waitRun(t, c, 2*time.Second)
}

// After a long pause, deletions wait their turn under the pause threshold,
// unless the deletion threshold is reached.
func TestPacing(t *testing.T) {
	for _, threshold := range []int{0, 2} {
		c := newFake()
		c.pause = time.Second // at 2%, the next paced run is 49s away
		cfg := quiet()
		cfg.DeletionThreshold = threshold
		s := start(t, c, cfg)
		if _, err := s.ScheduleAndWait(context.Background()); err != nil {
			t.Fatal(err)
		}
		<-c.ran

		c.mutate(true)
		noRun(t, c, 50*time.Millisecond)
		c.mutate(true)
		if threshold == 0 {
			noRun(t, c, 50*time.Millisecond)
		} else {
			waitRun(t, c, 2*time.Second)
		}
	}
}

// A deletion long after the last collection waits for the next tick of
// the pacing clock instead of collecting at once.
func TestPacingTicks(t *testing.T) {
	c := newFake()
	c.pause = 10 * time.Millisecond // at 2%, ticks every 490ms
	s := start(t, c, quiet())
	if _, err := s.ScheduleAndWait(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-c.ran
	time.Sleep(600 * time.Millisecond) // past the first tick
	c.mutate(true)
	noRun(t, c, 100*time.Millisecond) // the next tick is ~380ms away
	waitRun(t, c, 2*time.Second)
}

func TestScheduleDelay(t *testing.T) {
	c := newFake()
	cfg := quiet()
	cfg.ScheduleDelay = Duration(100 * time.Millisecond)
	s := start(t, c, cfg)
	begin := time.Now()
	if _, err := s.ScheduleAndWait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d < 100*time.Millisecond {
		t.Errorf("collection ran after %v, before the schedule delay", d)
	}
}

func TestScheduleAndWait(t *testing.T) {
	c := newFake()
	c.pause = 3 * time.Millisecond
	s := start(t, c, quiet())

	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			before := c.count()
			stats, err := s.ScheduleAndWait(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			if stats.MetaD != c.pause {
				t.Errorf("stats = %+v", stats)
			}
			// The run waited for started after the call.
			if c.count() <= before {
				t.Errorf("returned without a new collection")
			}
		})
	}
	wg.Wait()
	if n := c.count(); n < 1 || n > 10 {
		t.Errorf("%d collections for 10 concurrent waiters", n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.ScheduleAndWait(ctx); !errors.Is(err, context.Canceled) && err != nil {
		t.Errorf("ScheduleAndWait with a done context = %v", err)
	}
}

func TestScheduleAndWaitError(t *testing.T) {
	c := newFake()
	c.err = errors.New("boom")
	s := start(t, c, quiet())
	if _, err := s.ScheduleAndWait(context.Background()); err == nil || err.Error() != "boom" {
		t.Fatalf("ScheduleAndWait = %v, want boom", err)
	}
}

func TestStopped(t *testing.T) {
	c := newFake()
	s := New(c, quiet())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Run(ctx) // returns at once
	if _, err := s.ScheduleAndWait(context.Background()); !errors.Is(err, ErrStopped) {
		t.Fatalf("ScheduleAndWait on a stopped scheduler = %v, want ErrStopped", err)
	}
}

func TestConfigTOML(t *testing.T) {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`pause_threshold = 0.02`,
		`deletion_threshold = 0`,
		`mutation_threshold = 100`,
		`schedule_delay = "0s"`,
		`startup_delay = "100ms"`,
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("encoded config lacks %s:\n%s", want, buf.String())
		}
	}
	var back Config
	if _, err := toml.Decode(buf.String(), &back); err != nil {
		t.Fatal(err)
	}
	if back != *DefaultConfig() {
		t.Errorf("round trip = %+v, want %+v", back, *DefaultConfig())
	}

	var cfg Config
	if _, err := toml.Decode(`schedule_delay = "1.5s"`, &cfg); err != nil || cfg.ScheduleDelay != Duration(1500*time.Millisecond) {
		t.Errorf("decode 1.5s = %v, %v", time.Duration(cfg.ScheduleDelay), err)
	}
	if _, err := toml.Decode(`startup_delay = "soon"`, &cfg); err == nil {
		t.Error("decoded an invalid duration")
	}
}

type fakeDB struct {
	*fakeCollector
	scheduler gc.Scheduler
}

func (d *fakeDB) SetScheduler(s gc.Scheduler) { d.scheduler = s }

func TestPlugin(t *testing.T) {
	var reg *plugin.Registration
	for _, r := range plugin.Registrations() {
		if r.URI() == "io.containerd.gc.v1.scheduler" {
			reg = r
		}
	}
	if reg == nil {
		t.Fatal("scheduler plugin not registered")
	}
	if len(reg.Requires) != 1 || reg.Requires[0] != plugin.MetadataPlugin {
		t.Errorf("requires %v", reg.Requires)
	}
	if cfg, ok := reg.Config.(*Config); !ok || *cfg != *DefaultConfig() {
		t.Errorf("default config = %#v", reg.Config)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := &fakeDB{fakeCollector: newFake()}
	set := plugin.NewPluginSet()
	md := &plugin.Registration{Type: plugin.MetadataPlugin, ID: "fake", InitFn: func(*plugin.InitContext) (interface{}, error) {
		return db, nil
	}}
	if err := set.Add(md.Init(plugin.NewContext(ctx, md, set, t.TempDir(), t.TempDir()))); err != nil {
		t.Fatal(err)
	}
	ic := plugin.NewContext(ctx, reg, set, t.TempDir(), t.TempDir())
	ic.Config = &Config{PauseThreshold: 2, MutationThreshold: -1}
	p := reg.Init(ic)
	inst, err := p.Instance()
	if err != nil {
		t.Fatal(err)
	}
	if db.scheduler != inst {
		t.Error("plugin did not install itself as the DB's scheduler")
	}
	if got := ic.Meta.Exports["PauseThreshold"]; got != "0.5" {
		t.Errorf("PauseThreshold export = %q, want the clamped 0.5", got)
	}
	if got := ic.Meta.Exports["MutationThreshold"]; got != "0" {
		t.Errorf("MutationThreshold export = %q, want 0", got)
	}
	if _, err := inst.(gc.Scheduler).ScheduleAndWait(ctx); err != nil {
		t.Errorf("ScheduleAndWait through the plugin: %v", err)
	}
}
