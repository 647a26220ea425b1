package scheduler

import (
	"fmt"
	"time"
)

// Config is the scheduler's section of the daemon config, with
// containerd's keys and meanings.
type Config struct {
	// PauseThreshold is the largest share of wall time that collections
	// triggered by mutations may pause metadata for: 0.02 allows 20ms a
	// second. It is clamped to [0, 0.5]. Requested collections and the
	// deletion threshold are not held to it.
	PauseThreshold float64 `toml:"pause_threshold"`
	// DeletionThreshold, if positive, collects as soon as (after
	// ScheduleDelay) this many mutations have happened since a deletion.
	// Any deletion still leads to a collection, paced by PauseThreshold.
	DeletionThreshold int `toml:"deletion_threshold"`
	// MutationThreshold, if positive, collects, paced by PauseThreshold,
	// after this many mutations even if nothing was deleted.
	MutationThreshold int `toml:"mutation_threshold"`
	// ScheduleDelay is how long after it is called for a collection runs.
	ScheduleDelay Duration `toml:"schedule_delay"`
	// StartupDelay is how long after start the first collection runs,
	// whether or not one is called for; zero skips it.
	StartupDelay Duration `toml:"startup_delay"`
}

// DefaultConfig returns containerd's defaults.
func DefaultConfig() *Config {
	return &Config{
		PauseThreshold:    0.02,
		DeletionThreshold: 0,
		MutationThreshold: 100,
		ScheduleDelay:     0,
		StartupDelay:      Duration(100 * time.Millisecond),
	}
}

// Duration is a time.Duration written in TOML as a string such as "100ms",
// as containerd writes it.
type Duration time.Duration

// UnmarshalText parses a time.ParseDuration string.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("duration %q: %w", text, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalText formats d as time.Duration does.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(time.Duration(d).String()), nil
}
