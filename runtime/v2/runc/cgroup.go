package runc

import (
	"fmt"
	"os"
	"sync"

	"github.com/containerd/cgroups/v3/cgroup1"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/errdefs"
)

// taskCgroup is a container's cgroup, found from its init's pid: cgroup v1
// (through cgroups/v3) or v2 (by hand, see cgroupv2.go), whichever the
// host runs. It reports the container's OOM kills and its metrics.
type taskCgroup struct {
	v1 cgroup1.Cgroup
	v2 string // the v2 cgroup's directory

	mu      sync.Mutex
	stopped bool
	oomFile *os.File   // v1's eventfd
	oom2    *oomWatch2 // v2's memory.events watch
}

func loadCgroup(pid int) (*taskCgroup, error) {
	if isUnified() {
		dir, err := cgroup2Of(pid)
		if err != nil {
			return nil, err
		}
		return &taskCgroup{v2: dir}, nil
	}
	cg, err := cgroup1.Load(cgroup1.PidPath(pid))
	if err != nil {
		return nil, fmt.Errorf("load the cgroups of pid %d: %w", pid, err)
	}
	return &taskCgroup{v1: cg}, nil
}

// watchOOM calls oom on every OOM kill in the cgroup until stop. On v1
// that is the memory.oom_control eventfd, which also fires once when the
// cgroup is removed; on v2 it is the oom_kill count of memory.events.
func (c *taskCgroup) watchOOM(oom func()) error {
	if c.v1 == nil {
		w, err := watchOOM2(c.v2, func() {
			if !c.isStopped() {
				oom()
			}
		})
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.oom2 = w
		c.mu.Unlock()
		return nil
	}
	fd, err := c.v1.OOMEventFD()
	if err != nil {
		return fmt.Errorf("memory.oom_control event: %w", err)
	}
	// Non-blocking, so that the file goes through Go's poller and Close
	// ends a Read that is waiting.
	if err := unix.SetNonblock(int(fd), true); err != nil {
		unix.Close(int(fd))
		return err
	}
	f := os.NewFile(fd, "oom-eventfd")
	c.mu.Lock()
	c.oomFile = f
	c.mu.Unlock()
	go func() {
		var b [8]byte
		for {
			if _, err := f.Read(b[:]); err != nil {
				return
			}
			if c.v1.State() == cgroup1.Deleted || c.isStopped() {
				return
			}
			oom()
		}
	}()
	return nil
}

func (c *taskCgroup) isStopped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopped
}

// stop ends OOM watching.
func (c *taskCgroup) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	if c.oomFile != nil {
		c.oomFile.Close()
		c.oomFile = nil
	}
	if c.oom2 != nil {
		c.oom2.stop()
	}
}

// stats are the cgroup's metrics in an Any named by the bare message name
// (io.containerd.cgroups.v1.Metrics or .v2.Metrics), the form ctr looks
// types up by.
func (c *taskCgroup) stats() (*anypb.Any, error) {
	var m proto.Message
	var err error
	if c.v1 == nil {
		m, err = stats2(c.v2)
	} else {
		m, err = c.v1.Stat(cgroup1.IgnoreNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("cgroup metrics: %w", err)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &anypb.Any{TypeUrl: string(proto.MessageName(m)), Value: b}, nil
}

var errNoCgroup = fmt.Errorf("the container's cgroup is unknown: %w", errdefs.ErrNotFound)
