package spec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/cri/config"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/oci"
)

// ErrHugetlbMissing is returned for hugepage limits on a host without the
// hugetlb cgroup controller, unless tolerate_missing_hugetlb_controller.
var ErrHugetlbMissing = errors.New("huge pages limits are specified but the hugetlb cgroup controller is missing; set tolerate_missing_hugetlb_controller to ignore them")

// ContainerResources converts CRI resources to OCI ones as containerd
// does: zero values are unset; a memory limit without a swap limit also
// limits memory+swap to it (no swapping) where the swap controller
// exists; hugepage limits only when the hugetlb controller is used
// (disable_hugetlb_controller off) and present; unified (cgroup v2 keys)
// only on a cgroup v2 host, ignored on v1 where runc would refuse them.
// nil gives nil.
func ContainerResources(r *runtime.LinuxContainerResources, cri *config.Config) (*specs.LinuxResources, error) {
	if r == nil {
		return nil, nil
	}
	if cri == nil {
		cri = config.Default()
	}
	out := &specs.LinuxResources{CPU: &specs.LinuxCPU{}, Memory: &specs.LinuxMemory{}}
	if p := uint64(r.GetCpuPeriod()); p != 0 {
		out.CPU.Period = &p
	}
	if q := r.GetCpuQuota(); q != 0 {
		out.CPU.Quota = &q
	}
	if sh := uint64(r.GetCpuShares()); sh != 0 {
		out.CPU.Shares = &sh
	}
	out.CPU.Cpus = r.GetCpusetCpus()
	out.CPU.Mems = r.GetCpusetMems()
	if limit := r.GetMemoryLimitInBytes(); limit != 0 {
		out.Memory.Limit = &limit
		if r.GetMemorySwapLimitInBytes() == 0 && swapControllerAvailable() {
			swap := limit
			out.Memory.Swap = &swap
		}
	}
	if swap := r.GetMemorySwapLimitInBytes(); swap != 0 && swapControllerAvailable() {
		out.Memory.Swap = &swap
	}
	var err error
	if hp := r.GetHugepageLimits(); len(hp) > 0 && !cri.DisableHugetlbController {
		if hugetlbControllerAvailable() {
			for _, l := range hp {
				out.HugepageLimits = append(out.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: l.GetPageSize(), Limit: l.GetLimit()})
			}
		} else if !cri.TolerateMissingHugetlbController {
			err = ErrHugetlbMissing
		}
	}
	if u := r.GetUnified(); len(u) > 0 && cgroup2() {
		out.Unified = maps.Clone(u)
	}
	return out, err
}

// withResources merges the container's resources into the spec's (the
// default spec's device rules stay).
func withResources(r *runtime.LinuxContainerResources, cri *config.Config) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		res, err := ContainerResources(r, cri)
		if err != nil || res == nil {
			return err
		}
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		dst := s.Linux.Resources
		if dst.CPU == nil {
			dst.CPU = &specs.LinuxCPU{}
		}
		if dst.Memory == nil {
			dst.Memory = &specs.LinuxMemory{}
		}
		c := res.CPU
		if c.Period != nil {
			dst.CPU.Period = c.Period
		}
		if c.Quota != nil {
			dst.CPU.Quota = c.Quota
		}
		if c.Shares != nil {
			dst.CPU.Shares = c.Shares
		}
		if c.Cpus != "" {
			dst.CPU.Cpus = c.Cpus
		}
		if c.Mems != "" {
			dst.CPU.Mems = c.Mems
		}
		if res.Memory.Limit != nil {
			dst.Memory.Limit = res.Memory.Limit
		}
		if res.Memory.Swap != nil {
			dst.Memory.Swap = res.Memory.Swap
		}
		dst.HugepageLimits = append(dst.HugepageLimits, res.HugepageLimits...)
		if len(res.Unified) > 0 {
			if dst.Unified == nil {
				dst.Unified = map[string]string{}
			}
			maps.Copy(dst.Unified, res.Unified)
		}
		return nil
	}
}

// UpdateResources returns a copy of the container's spec s with the CRI
// resources r applied over its own, as UpdateContainerResources does:
// values r leaves zero keep the spec's, unified keys are merged. The new
// spec's Linux.Resources is what the task is updated with; s is not
// changed.
func UpdateResources(s *specs.Spec, r *runtime.LinuxContainerResources, cri *config.Config) (*specs.Spec, error) {
	if s == nil {
		return nil, fmt.Errorf("update resources: no spec: %w", errdefs.ErrFailedPrecondition)
	}
	p, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var n specs.Spec
	if err := json.Unmarshal(p, &n); err != nil {
		return nil, err
	}
	if cri == nil {
		cri = config.Default()
	}
	if err := withResources(r, cri)(context.Background(), nil, nil, &n); err != nil {
		return nil, fmt.Errorf("update resources: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	return &n, nil
}
