package store

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerMetadata is what a container is made of; it does not change
// after CreateContainer and is kept in the containerd container record
// (extension MetadataExtension).
type ContainerMetadata struct {
	ID        string
	Name      string // the kubelet's name, from Config.Metadata
	SandboxID string
	// Config is the request's config, as given.
	Config *runtime.ContainerConfig
	// ImageRef is the image's id (its config digest).
	ImageRef string
	// LogPath is the log file: the sandbox's log directory joined with
	// the config's log path, "" for none.
	LogPath string
	// StopSignal is the image's STOPSIGNAL, "" for SIGTERM.
	StopSignal string
}

// ContainerStatus is what changes over a container's life. It is written
// to the container's status file on each change, so that a restarted
// daemon knows when a container that exited while it was down started and
// finished.
type ContainerStatus struct {
	Pid        uint32
	CreatedAt  int64 // Unix nanoseconds, as the CRI reports them
	StartedAt  int64
	FinishedAt int64
	ExitCode   int32
	Reason     string
	Message    string
	// Resources are the container's resources as last set (create or
	// UpdateContainerResources).
	Resources *runtime.ContainerResources `json:",omitempty"`

	// Starting and Removing guard against concurrent Start and Remove;
	// Unknown marks a container whose task could not be read on restart.
	Starting bool `json:"-"`
	Removing bool `json:"-"`
	Unknown  bool `json:"-"`
}

// State is the CRI state the status stands for.
func (s ContainerStatus) State() runtime.ContainerState {
	switch {
	case s.Unknown:
		return runtime.ContainerState_CONTAINER_UNKNOWN
	case s.FinishedAt != 0:
		return runtime.ContainerState_CONTAINER_EXITED
	case s.StartedAt != 0:
		return runtime.ContainerState_CONTAINER_RUNNING
	case s.CreatedAt != 0:
		return runtime.ContainerState_CONTAINER_CREATED
	}
	return runtime.ContainerState_CONTAINER_UNKNOWN
}

// Container is a CRI container in the store.
type Container struct {
	Metadata ContainerMetadata

	mu         sync.RWMutex
	status     ContainerStatus
	statusFile string // "" keeps the status in memory only
	// stopped is closed once the container's process has exited.
	stopped  chan struct{}
	stopOnce sync.Once

	// IO is the container's stdio (a *cri/io.ContainerIO); any to keep
	// this package free of the io package.
	IO any
}

// ContainerKey is the key function for a Store of containers.
func ContainerKey(c *Container) (string, string) { return c.Metadata.ID, c.Metadata.Name }

// NewContainer returns a container whose status is kept in statusFile
// (written now, then on every update); "" keeps it in memory.
func NewContainer(md ContainerMetadata, st ContainerStatus, statusFile string) (*Container, error) {
	c := &Container{Metadata: md, status: st, statusFile: statusFile, stopped: make(chan struct{})}
	if err := c.persist(st); err != nil {
		return nil, err
	}
	return c, nil
}

// LoadContainerStatus reads a status file written by a Container.
func LoadContainerStatus(statusFile string) (ContainerStatus, error) {
	var st ContainerStatus
	b, err := os.ReadFile(statusFile)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("status file %s: %w", statusFile, err)
	}
	return st, nil
}

// Status returns the container's status.
func (c *Container) Status() ContainerStatus {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.status
}

// UpdateStatus changes the status under the container's lock and writes
// it to the status file before the change is seen; an error from f or
// from the write leaves the status as it was.
func (c *Container) UpdateStatus(f func(ContainerStatus) (ContainerStatus, error)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := f(c.status)
	if err != nil {
		return err
	}
	if err := c.persist(st); err != nil {
		return err
	}
	c.status = st
	return nil
}

// persist writes st by rename, so a crash leaves the old or the new file.
// No fsync: a status lost in a host crash is rebuilt from the task's state.
func (c *Container) persist(st ContainerStatus) error {
	if c.statusFile == "" {
		return nil
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.statusFile), 0o700); err != nil {
		return err
	}
	tmp := c.statusFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("writing container %s status: %w", c.Metadata.ID, err)
	}
	return os.Rename(tmp, c.statusFile)
}

// Stopped is closed once the container's process has exited.
func (c *Container) Stopped() <-chan struct{} { return c.stopped }

// MarkStopped closes Stopped; calling it again does nothing.
func (c *Container) MarkStopped() { c.stopOnce.Do(func() { close(c.stopped) }) }

// The container record's labels and extensions that mark CRI objects, as
// containerd names them (so `ctr -n k8s.io containers ls` reads alike).
const (
	// KindLabel is "sandbox" or "container".
	KindLabel     = "io.cri-containerd.kind"
	KindSandbox   = "sandbox"
	KindContainer = "container"
	// SandboxIDLabel on a container names its sandbox.
	SandboxIDLabel = "io.cri-containerd.sandbox-id"
	// SandboxMetadataExtension and ContainerMetadataExtension hold the
	// JSON of the metadata (MarshalSandboxMetadata and friends).
	SandboxMetadataExtension   = "io.cri-containerd.sandbox.metadata"
	ContainerMetadataExtension = "io.cri-containerd.container.metadata"
)

// ContainerTime converts a Unix nanosecond time to time.Time (zero for 0).
func ContainerTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}
