package store

import (
	"sync"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// SandboxState is where a pod sandbox is in its life.
type SandboxState int

const (
	// SandboxUnknown: being created, or its state could not be read
	// (after a restart with its shim gone).
	SandboxUnknown SandboxState = iota
	// SandboxReady: the pause container runs and the network is set up.
	SandboxReady
	// SandboxNotReady: stopped (pause container gone, network torn down).
	SandboxNotReady
)

// SandboxMetadata is what a sandbox is made of; it does not change after
// RunPodSandbox and is kept in the sandbox container's record (extension
// MetadataExtension) to rebuild the store after a restart.
type SandboxMetadata struct {
	ID   string
	Name string // the kubelet's name for it, from Config.Metadata
	// Config is the request's config, as given.
	Config *runtime.PodSandboxConfig
	// NetNSPath is the pod's network namespace (empty for host network).
	NetNSPath string
	// IP and AdditionalIPs are the pod's addresses from CNI.
	IP            string
	AdditionalIPs []string
	// RuntimeHandler is the request's, "" for the default runtime.
	RuntimeHandler string
	// CNIResult is the CNI result as JSON, for inspectp's info.
	CNIResult []byte
}

// SandboxStatus is what changes over a sandbox's life.
type SandboxStatus struct {
	State SandboxState
	// Pid is the pause container's init process.
	Pid       uint32
	CreatedAt time.Time
	// ExitStatus and ExitedAt are the pause container's exit.
	ExitStatus uint32
	ExitedAt   time.Time
}

// Sandbox is a pod sandbox in the store.
type Sandbox struct {
	Metadata SandboxMetadata

	mu     sync.RWMutex
	status SandboxStatus
	// stopped is closed once the pause container has exited.
	stopped  chan struct{}
	stopOnce sync.Once
}

// NewSandbox returns a sandbox with the given metadata and status.
func NewSandbox(md SandboxMetadata, st SandboxStatus) *Sandbox {
	return &Sandbox{Metadata: md, status: st, stopped: make(chan struct{})}
}

// SandboxKey is the key function for a Store of sandboxes.
func SandboxKey(s *Sandbox) (string, string) { return s.Metadata.ID, s.Metadata.Name }

// Status returns the sandbox's status.
func (s *Sandbox) Status() SandboxStatus {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.status
}

// UpdateStatus changes the status under the sandbox's lock: f gets the
// current status and returns the new one, or an error to leave it.
func (s *Sandbox) UpdateStatus(f func(SandboxStatus) (SandboxStatus, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := f(s.status)
	if err != nil {
		return err
	}
	s.status = st
	return nil
}

// Stopped is closed once the sandbox's pause container has exited.
func (s *Sandbox) Stopped() <-chan struct{} { return s.stopped }

// MarkStopped closes Stopped; calling it again does nothing.
func (s *Sandbox) MarkStopped() { s.stopOnce.Do(func() { close(s.stopped) }) }
