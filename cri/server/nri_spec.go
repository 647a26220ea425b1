package server

import (
	"fmt"

	"github.com/containerd/nri/pkg/runtime-tools/generate"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// specEditor is the small OCI spec editor NRI's adjustment code
// (github.com/containerd/nri/pkg/runtime-tools/generate) works through:
// the subset of runtime-tools' generator it calls, over a spec of ours,
// so that the daemon does not need runtime-tools for it.
type specEditor struct{ s *specs.Spec }

var _ generate.UnderlyingGenerator = specEditor{}

func (e specEditor) Spec() *specs.Spec { return e.s }

func (e specEditor) process() *specs.Process {
	if e.s.Process == nil {
		e.s.Process = &specs.Process{}
	}
	return e.s.Process
}

func (e specEditor) linux() *specs.Linux {
	if e.s.Linux == nil {
		e.s.Linux = &specs.Linux{}
	}
	return e.s.Linux
}

func (e specEditor) resources() *specs.LinuxResources {
	l := e.linux()
	if l.Resources == nil {
		l.Resources = &specs.LinuxResources{}
	}
	return l.Resources
}

func (e specEditor) cpu() *specs.LinuxCPU {
	r := e.resources()
	if r.CPU == nil {
		r.CPU = &specs.LinuxCPU{}
	}
	return r.CPU
}

func (e specEditor) memory() *specs.LinuxMemory {
	r := e.resources()
	if r.Memory == nil {
		r.Memory = &specs.LinuxMemory{}
	}
	return r.Memory
}

func (e specEditor) hooks() *specs.Hooks {
	if e.s.Hooks == nil {
		e.s.Hooks = &specs.Hooks{}
	}
	return e.s.Hooks
}

func (e specEditor) AddAnnotation(key, value string) {
	if e.s.Annotations == nil {
		e.s.Annotations = map[string]string{}
	}
	e.s.Annotations[key] = value
}

func (e specEditor) RemoveAnnotation(key string) { delete(e.s.Annotations, key) }

func (e specEditor) AddDevice(d specs.LinuxDevice) {
	l := e.linux()
	for i := range l.Devices {
		if l.Devices[i].Path == d.Path {
			l.Devices[i] = d
			return
		}
	}
	l.Devices = append(l.Devices, d)
}

func (e specEditor) RemoveDevice(path string) {
	l := e.linux()
	for i := range l.Devices {
		if l.Devices[i].Path == path {
			l.Devices = append(l.Devices[:i], l.Devices[i+1:]...)
			return
		}
	}
}

// namespaceType maps runtime-tools' namespace names (which take "net"
// for "network") to the spec's.
func namespaceType(ns string) (specs.LinuxNamespaceType, error) {
	switch ns {
	case "net", "network":
		return specs.NetworkNamespace, nil
	case "pid", "mount", "ipc", "uts", "user", "cgroup", "time":
		return specs.LinuxNamespaceType(ns), nil
	}
	return "", fmt.Errorf("unknown namespace type %q", ns)
}

func (e specEditor) AddOrReplaceLinuxNamespace(ns, path string) error {
	t, err := namespaceType(ns)
	if err != nil {
		return err
	}
	l := e.linux()
	for i := range l.Namespaces {
		if l.Namespaces[i].Type == t {
			l.Namespaces[i].Path = path
			return nil
		}
	}
	l.Namespaces = append(l.Namespaces, specs.LinuxNamespace{Type: t, Path: path})
	return nil
}

func (e specEditor) RemoveLinuxNamespace(ns string) error {
	t, err := namespaceType(ns)
	if err != nil {
		return err
	}
	l := e.linux()
	for i := range l.Namespaces {
		if l.Namespaces[i].Type == t {
			l.Namespaces = append(l.Namespaces[:i], l.Namespaces[i+1:]...)
			return nil
		}
	}
	return nil
}

func (e specEditor) AddPreStartHook(h specs.Hook) {
	//lint:ignore SA1019 NRI plugins may still add the deprecated prestart hooks
	e.hooks().Prestart = append(e.hooks().Prestart, h)
}
func (e specEditor) AddPostStartHook(h specs.Hook) {
	e.hooks().Poststart = append(e.hooks().Poststart, h)
}
func (e specEditor) AddPostStopHook(h specs.Hook) { e.hooks().Poststop = append(e.hooks().Poststop, h) }

func (e specEditor) AddProcessEnv(name, value string) {
	p := e.process()
	kv := name + "=" + value
	for i, v := range p.Env {
		if len(v) > len(name) && v[:len(name)+1] == name+"=" {
			p.Env[i] = kv
			return
		}
	}
	p.Env = append(p.Env, kv)
}

func (e specEditor) ClearProcessEnv()             { e.process().Env = nil }
func (e specEditor) SetProcessArgs(args []string) { e.process().Args = args }
func (e specEditor) SetProcessOOMScoreAdj(adj int) {
	e.process().OOMScoreAdj = &adj
}

func (e specEditor) AddLinuxResourcesDevice(allow bool, devType string, major, minor *int64, access string) {
	r := e.resources()
	r.Devices = append(r.Devices, specs.LinuxDeviceCgroup{Allow: allow, Type: devType, Major: major, Minor: minor, Access: access})
}

func (e specEditor) AddLinuxResourcesHugepageLimit(pageSize string, limit uint64) {
	r := e.resources()
	for i := range r.HugepageLimits {
		if r.HugepageLimits[i].Pagesize == pageSize {
			r.HugepageLimits[i].Limit = limit
			return
		}
	}
	r.HugepageLimits = append(r.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: pageSize, Limit: limit})
}

func (e specEditor) AddLinuxResourcesUnified(key, val string) {
	r := e.resources()
	if r.Unified == nil {
		r.Unified = map[string]string{}
	}
	r.Unified[key] = val
}

func (e specEditor) AddLinuxSysctl(key, value string) {
	l := e.linux()
	if l.Sysctl == nil {
		l.Sysctl = map[string]string{}
	}
	l.Sysctl[key] = value
}

func (e specEditor) RemoveLinuxSysctl(key string) { delete(e.linux().Sysctl, key) }

func (e specEditor) AddMount(m specs.Mount) { e.s.Mounts = append(e.s.Mounts, m) }
func (e specEditor) ClearMounts()           { e.s.Mounts = nil }
func (e specEditor) Mounts() []specs.Mount  { return e.s.Mounts }

func (e specEditor) RemoveMount(dest string) {
	for i := range e.s.Mounts {
		if e.s.Mounts[i].Destination == dest {
			e.s.Mounts = append(e.s.Mounts[:i], e.s.Mounts[i+1:]...)
			return
		}
	}
}

func (e specEditor) SetLinuxCgroupsPath(path string)     { e.linux().CgroupsPath = path }
func (e specEditor) SetLinuxResourcesCPUCpus(c string)   { e.cpu().Cpus = c }
func (e specEditor) SetLinuxResourcesCPUMems(m string)   { e.cpu().Mems = m }
func (e specEditor) SetLinuxResourcesCPUPeriod(p uint64) { e.cpu().Period = &p }
func (e specEditor) SetLinuxResourcesCPUQuota(q int64)   { e.cpu().Quota = &q }
func (e specEditor) SetLinuxResourcesCPUShares(s uint64) { e.cpu().Shares = &s }
func (e specEditor) SetLinuxResourcesCPURealtimePeriod(p uint64) {
	e.cpu().RealtimePeriod = &p
}
func (e specEditor) SetLinuxResourcesCPURealtimeRuntime(t int64) {
	e.cpu().RealtimeRuntime = &t
}
func (e specEditor) SetLinuxResourcesMemoryLimit(l int64) { e.memory().Limit = &l }
func (e specEditor) SetLinuxResourcesMemorySwap(s int64)  { e.memory().Swap = &s }

func (e specEditor) SetLinuxRootPropagation(rp string) error {
	switch rp {
	case "", "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable":
		e.linux().RootfsPropagation = rp
		return nil
	}
	return fmt.Errorf("rootfs propagation %q is not one the OCI spec knows", rp)
}
