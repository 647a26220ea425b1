// Package scheduler decides when the metadata store collects garbage: soon
// after deletions, after many mutations, and on request, while keeping the
// time metadata spends paused for collection to a share of wall time.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/llitfkitfk/containerd/gc"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/plugin"
)

func init() {
	plugin.Register(&plugin.Registration{
		Type:     plugin.GCPlugin,
		ID:       "scheduler",
		Requires: []plugin.Type{plugin.MetadataPlugin},
		Config:   DefaultConfig(),
		InitFn: func(ic *plugin.InitContext) (interface{}, error) {
			md, err := ic.Get(plugin.MetadataPlugin)
			if err != nil {
				return nil, err
			}
			c, ok := md.(Collector)
			if !ok {
				return nil, fmt.Errorf("%s plugin is a %T, which cannot collect garbage", plugin.MetadataPlugin, md)
			}
			s := New(c, *ic.Config.(*Config))
			// Synchronous deletes then wait on this scheduler's runs.
			if sc, ok := md.(interface{ SetScheduler(gc.Scheduler) }); ok {
				sc.SetScheduler(s)
			}
			ic.Meta.Exports["PauseThreshold"] = fmt.Sprint(s.pauseThreshold)
			ic.Meta.Exports["DeletionThreshold"] = fmt.Sprint(s.deletionThreshold)
			ic.Meta.Exports["MutationThreshold"] = fmt.Sprint(s.mutationThreshold)
			ic.Meta.Exports["ScheduleDelay"] = fmt.Sprint(s.scheduleDelay)
			go s.Run(ic.Context)
			return s, nil
		},
	})
}

// Collector is what the scheduler runs collections on: the metadata DB.
type Collector interface {
	// RegisterMutationCallback has fn called after every change, told
	// whether anything was deleted since the last collection.
	RegisterMutationCallback(fn func(dirty bool))
	GarbageCollect(ctx context.Context) (gc.Stats, error)
}

// ErrStopped is returned to callers waiting on a scheduler that stopped.
var ErrStopped = errors.New("garbage collection scheduler stopped")

// Scheduler runs a Collector's collections. It implements gc.Scheduler.
type Scheduler struct {
	c Collector

	pauseThreshold    float64
	deletionThreshold int
	mutationThreshold int
	scheduleDelay     time.Duration
	startupDelay      time.Duration

	wake chan struct{} // has Run look at the state again

	mu sync.Mutex
	// Since the last collection started:
	mutations int
	deletions int // mutations made while a deletion was pending
	// urgent is when a requested or threshold collection is due, ignoring
	// the pause threshold; wanted is when a paced one may run at the
	// earliest. Zero means none is called for.
	urgent  time.Time
	wanted  time.Time
	waiters []chan<- result
	stopped bool
}

type result struct {
	stats gc.Stats
	err   error
}

// New returns a scheduler for c with cfg, out-of-range values clamped. It
// collects nothing until Run is called.
func New(c Collector, cfg Config) *Scheduler {
	s := &Scheduler{
		c:                 c,
		pauseThreshold:    min(max(cfg.PauseThreshold, 0), 0.5),
		deletionThreshold: max(cfg.DeletionThreshold, 0),
		mutationThreshold: max(cfg.MutationThreshold, 0),
		scheduleDelay:     max(time.Duration(cfg.ScheduleDelay), 0),
		startupDelay:      max(time.Duration(cfg.StartupDelay), 0),
		wake:              make(chan struct{}, 1),
	}
	c.RegisterMutationCallback(s.mutated)
	return s
}

// ScheduleAndWait has a collection run, one that starts after the call,
// and returns its outcome.
func (s *Scheduler) ScheduleAndWait(ctx context.Context) (gc.Stats, error) {
	ch := make(chan result, 1)
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return gc.Stats{}, ErrStopped
	}
	s.waiters = append(s.waiters, ch)
	s.callFor(&s.urgent, time.Now())
	s.mu.Unlock()
	s.poke()

	select {
	case r := <-ch:
		return r.stats, r.err
	case <-ctx.Done():
		return gc.Stats{}, ctx.Err()
	}
}

// mutated is the DB's mutation callback; it runs inside the DB's lock, so
// it only counts.
func (s *Scheduler) mutated(dirty bool) {
	now := time.Now()
	s.mu.Lock()
	s.mutations++
	if dirty {
		s.deletions++
	}
	if s.deletionThreshold > 0 && s.deletions >= s.deletionThreshold {
		s.callFor(&s.urgent, now)
	}
	if s.deletions > 0 || (s.mutationThreshold > 0 && s.mutations >= s.mutationThreshold) {
		s.callFor(&s.wanted, now)
	}
	s.mu.Unlock()
	s.poke()
}

// callFor sets *at, unless already earlier, to ScheduleDelay after now.
// s.mu must be held.
func (s *Scheduler) callFor(at *time.Time, now time.Time) {
	t := now.Add(s.scheduleDelay)
	if at.IsZero() || t.Before(*at) {
		*at = t
	}
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run collects whenever a collection is due, until ctx is done.
func (s *Scheduler) Run(ctx context.Context) {
	defer s.stop()

	var (
		p       pacer
		startup time.Time // zero once the startup collection ran
		timer   = time.NewTimer(time.Hour)
	)
	timer.Stop()
	if s.startupDelay > 0 {
		startup = time.Now().Add(s.startupDelay)
	}
	for {
		now := time.Now()
		due := s.due(p)
		if !startup.IsZero() && (due.IsZero() || startup.Before(due)) {
			due = startup
		}
		if !due.IsZero() && !due.After(now) {
			startup = time.Time{}
			s.collect(ctx, &p)
			continue
		}

		var fire <-chan time.Time
		if !due.IsZero() {
			timer.Reset(due.Sub(now))
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-s.wake:
		case <-fire:
		}
		timer.Stop()
	}
}

// due returns when the next collection should run, zero if none is
// called for.
func (s *Scheduler) due(p pacer) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	due := s.wanted
	if !due.IsZero() {
		due = p.earliest(due)
	}
	if !s.urgent.IsZero() && (due.IsZero() || s.urgent.Before(due)) {
		due = s.urgent
	}
	return due
}

// collect runs one collection for the waiters so far. What happens from
// here on counts toward the next.
func (s *Scheduler) collect(ctx context.Context, p *pacer) {
	s.mu.Lock()
	waiters, mutations, deletions := s.waiters, s.mutations, s.deletions
	s.waiters, s.mutations, s.deletions = nil, 0, 0
	s.urgent, s.wanted = time.Time{}, time.Time{}
	s.mu.Unlock()

	stats, err := s.c.GarbageCollect(ctx)
	p.record(stats, err, s.pauseThreshold)
	if err != nil {
		log.G(ctx).WithError(err).Error("garbage collection failed")
		// Try again later, paced, with what it was meant to clear.
		s.mu.Lock()
		s.mutations += mutations
		s.deletions += deletions
		if deletions > 0 || mutations > 0 {
			s.callFor(&s.wanted, time.Now())
		}
		s.mu.Unlock()
	} else {
		log.G(ctx).WithField("d", stats.Elapsed()).Debug("garbage collected")
	}
	for _, w := range waiters {
		w <- result{stats, err}
	}
}

// stop fails the callers still waiting and refuses new ones.
func (s *Scheduler) stop() {
	s.mu.Lock()
	waiters := s.waiters
	s.waiters, s.stopped = nil, true
	s.mu.Unlock()
	for _, w := range waiters {
		w <- result{err: ErrStopped}
	}
}

// pacer spaces paced collections so that their average pause is at most
// the pause threshold's share of the time between them.
type pacer struct {
	last     time.Time     // when the last collection ended
	interval time.Duration // wanted time from one to the next
	total    time.Duration // of the pauses so far
	count    int
}

// retryInterval spaces attempts after a failed collection, and paced
// collections when there is no pause threshold, as in containerd.
const retryInterval = time.Second

func (p *pacer) record(stats gc.Stats, err error, threshold float64) {
	p.last = time.Now()
	if err != nil {
		p.interval = max(p.interval, retryInterval)
		return
	}
	p.total += stats.Elapsed()
	p.count++
	if threshold <= 0 {
		p.interval = retryInterval
		return
	}
	// A pause of avg every avg/threshold of wall time keeps to it.
	avg := float64(p.total) / float64(p.count)
	p.interval = time.Duration(avg/threshold - avg)
}

// earliest returns when a paced collection wanted at t may run: on the
// first tick at or after t of a clock that ticks every interval from the
// last collection. As with containerd's, a deletion long after the last
// collection waits for the next tick rather than collecting at once, so a
// collection seldom starts just as the client that deleted something
// sends its next write, which would wait for it.
func (p pacer) earliest(t time.Time) time.Time {
	if p.last.IsZero() {
		return t
	}
	tick := p.last.Add(p.interval)
	if !t.After(tick) {
		return tick
	}
	if p.interval <= 0 {
		return t
	}
	n := (t.Sub(tick) + p.interval - 1) / p.interval
	return tick.Add(n * p.interval)
}
