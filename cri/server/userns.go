package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go/features"
	"golang.org/x/sys/unix"

	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/log"
)

// defaultRuncBinary is the OCI runtime the runc shim runs when the
// runtime's options name no BinaryName; it is looked up on PATH, as the
// shim looks it up.
const defaultRuncBinary = "runc"

// runtimeFeaturesTimeout bounds `<runtime> features`: a hung binary must
// not hang the CRI's Status.
const runtimeFeaturesTimeout = 10 * time.Second

// runtimeFeatures asks an OCI runtime binary what it supports
// (`<binary> features`, the OCI runtime features document). A runtime
// without the subcommand (runc before 1.1) gives an error.
func runtimeFeatures(ctx context.Context, binary string) (*features.Features, error) {
	ctx, cancel := context.WithTimeout(ctx, runtimeFeaturesTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, binary, "features")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s features: %w: %s", binary, err, bytes.TrimSpace(stderr.Bytes()))
	}
	var f features.Features
	if err := json.Unmarshal(out, &f); err != nil {
		return nil, fmt.Errorf("%s features: output is not an OCI features document: %w", binary, err)
	}
	return &f, nil
}

// runtimeSupportsUserns tells whether a runtime can run pods with a user
// namespace of their own as the CRI asks (NamespaceMode_POD): it must
// know user namespaces and do idmapped mounts, which give the pod's
// volumes and root filesystem the pod's ids.
func runtimeSupportsUserns(f *features.Features) bool {
	if f == nil || f.Linux == nil || !slices.Contains(f.Linux.Namespaces, "user") {
		return false
	}
	m := f.Linux.MountExtensions
	return m != nil && m.IDMap != nil && m.IDMap.Enabled != nil && *m.IDMap.Enabled
}

// kernelSupportsIDMapMounts tells whether the kernel can idmap mounts
// (MOUNT_ATTR_IDMAP, with mount_setattr in Linux 5.12).
var kernelSupportsIDMapMounts = sync.OnceValue(func() bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	return kernelAtLeast(unix.ByteSliceToString(u.Release[:]), 5, 12)
})

// usernsProbe caches, per runtime binary, whether pods with user
// namespaces can run on it: the binary is asked once, at the first
// Status, not on every call.
type usernsProbe struct {
	mu sync.Mutex
	// ask runs `<binary> features`; a field so that tests fake it.
	ask     func(ctx context.Context, binary string) (*features.Features, error)
	kernel  func() bool
	answers map[string]bool
}

var defaultUsernsProbe = &usernsProbe{ask: runtimeFeatures, kernel: kernelSupportsIDMapMounts}

// supported answers for the runtime's binary (BinaryName of its options,
// runc if unset). Runtimes other than runc's shim are asked nothing and
// claim nothing.
func (p *usernsProbe) supported(ctx context.Context, rt config.Runtime) bool {
	if rt.Type != config.DefaultRuntimeType || !p.kernel() {
		return false
	}
	o, err := rt.RuncOptions()
	if err != nil {
		return false
	}
	binary := o.GetBinaryName()
	if binary == "" {
		binary = defaultRuncBinary
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if ok, done := p.answers[binary]; done {
		return ok
	}
	f, err := p.ask(ctx, binary)
	ok := err == nil && runtimeSupportsUserns(f)
	if err != nil {
		log.G(ctx).WithError(err).Infof("CRI: runtime %s is not asked for features; no user namespaces for pods", binary)
	} else {
		log.G(ctx).Debugf("CRI: runtime %s supports user namespaces with idmapped mounts: %v", binary, ok)
	}
	if p.answers == nil {
		p.answers = map[string]bool{}
	}
	p.answers[binary] = ok
	return ok
}
