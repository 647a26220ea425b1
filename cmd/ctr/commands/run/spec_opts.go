package run

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/oci"
)

// The spec changes of run's flags that the oci package has no option
// for; each is a plain oci.SpecOpts.

func linux(s *oci.Spec) *specs.Linux {
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	return s.Linux
}

func resources(s *oci.Spec) *specs.LinuxResources {
	l := linux(s)
	if l.Resources == nil {
		l.Resources = &specs.LinuxResources{}
	}
	return l.Resources
}

func cpu(s *oci.Spec) *specs.LinuxCPU {
	r := resources(s)
	if r.CPU == nil {
		r.CPU = &specs.LinuxCPU{}
	}
	return r.CPU
}

func process(s *oci.Spec) *specs.Process {
	if s.Process == nil {
		s.Process = &specs.Process{}
	}
	return s.Process
}

func specOpt(f func(s *oci.Spec) error) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		return f(s)
	}
}

func withRootFSReadonly() oci.SpecOpts {
	return specOpt(func(s *oci.Spec) error {
		if s.Root == nil {
			s.Root = &specs.Root{}
		}
		s.Root.Readonly = true
		return nil
	})
}

func withRootFSPath(path string) oci.SpecOpts {
	return specOpt(func(s *oci.Spec) error {
		if s.Root == nil {
			s.Root = &specs.Root{}
		}
		s.Root.Path = path
		return nil
	})
}

func withHostname(name string) oci.SpecOpts {
	return specOpt(func(s *oci.Spec) error { s.Hostname = name; return nil })
}

func withMemoryLimit(limit uint64) oci.SpecOpts {
	return specOpt(func(s *oci.Spec) error {
		r := resources(s)
		if r.Memory == nil {
			r.Memory = &specs.LinuxMemory{}
		}
		l := int64(limit)
		r.Memory.Limit = &l
		return nil
	})
}

func withCPUCFS(quota int64, period uint64) oci.SpecOpts {
	return specOpt(func(s *oci.Spec) error {
		c := cpu(s)
		c.Quota, c.Period = &quota, &period
		return nil
	})
}

func withCPUShares(shares uint64) oci.SpecOpts {
	return specOpt(func(s *oci.Spec) error { cpu(s).Shares = &shares; return nil })
}

func withCgroup(path string) oci.SpecOpts {
	return specOpt(func(s *oci.Spec) error { linux(s).CgroupsPath = path; return nil })
}

// withLinuxNamespace joins the namespace at ns.Path, replacing the
// spec's namespace of that type.
func withLinuxNamespace(ns specs.LinuxNamespace) oci.SpecOpts {
	return specOpt(func(s *oci.Spec) error {
		l := linux(s)
		for i, n := range l.Namespaces {
			if n.Type == ns.Type {
				l.Namespaces[i] = ns
				return nil
			}
		}
		l.Namespaces = append(l.Namespaces, ns)
		return nil
	})
}

func withNewPrivileges() oci.SpecOpts {
	return specOpt(func(s *oci.Spec) error { process(s).NoNewPrivileges = false; return nil })
}

func withAnnotations(annotations map[string]string) oci.SpecOpts {
	return specOpt(func(s *oci.Spec) error {
		if len(annotations) == 0 {
			return nil
		}
		if s.Annotations == nil {
			s.Annotations = make(map[string]string, len(annotations))
		}
		for k, v := range annotations {
			s.Annotations[k] = v
		}
		return nil
	})
}

// withCapabilities adds (or, with drop, removes) caps from every set of
// the process's capabilities.
func withCapabilities(caps []string, drop bool) oci.SpecOpts {
	return specOpt(func(s *oci.Spec) error {
		p := process(s)
		if p.Capabilities == nil {
			p.Capabilities = &specs.LinuxCapabilities{}
		}
		c := p.Capabilities
		for _, set := range []*[]string{&c.Bounding, &c.Effective, &c.Permitted} {
			*set = changeCaps(*set, caps, drop)
		}
		return nil
	})
}

func changeCaps(set, caps []string, drop bool) []string {
	out := set[:0:0]
	for _, c := range set {
		if !containsString(caps, c) {
			out = append(out, c)
		}
	}
	if !drop {
		out = append(out, caps...)
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// readEnvFile reads KEY=value lines; blank lines and # comments are
// skipped.
func readEnvFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var env []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		env = append(env, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("env file %s: %w", path, err)
	}
	return env, nil
}

// parseMountFlag reads a --mount value,
// "type=bind,src=/path,dst=/target,options=rbind:ro" (source and
// destination are the long names of src and dst).
func parseMountFlag(m string) (specs.Mount, error) {
	var mount specs.Mount
	fields, err := csv.NewReader(strings.NewReader(m)).Read()
	if err != nil {
		return mount, fmt.Errorf("mount %q: %w", m, err)
	}
	for _, field := range fields {
		key, val, ok := strings.Cut(field, "=")
		if !ok {
			return mount, fmt.Errorf("invalid mount specification %q: expected key=val", m)
		}
		switch key {
		case "type":
			mount.Type = val
		case "source", "src":
			mount.Source = val
		case "destination", "dst":
			mount.Destination = val
		case "options":
			mount.Options = strings.Split(val, ":")
		default:
			return mount, fmt.Errorf("mount option %q not supported", key)
		}
	}
	if mount.Destination == "" {
		return mount, fmt.Errorf("mount %q has no destination", m)
	}
	return mount, nil
}

// validNamespace reports whether ns names a Linux namespace --with-ns
// can join.
func validNamespace(ns string) bool {
	switch specs.LinuxNamespaceType(ns) {
	case specs.PIDNamespace, specs.NetworkNamespace, specs.UTSNamespace, specs.MountNamespace,
		specs.UserNamespace, specs.IPCNamespace, specs.CgroupNamespace:
		return true
	}
	return false
}

// labelArgs reads key=value arguments; a key alone means "true".
func labelArgs(args []string) map[string]string {
	labels := make(map[string]string, len(args))
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			v = "true"
		}
		labels[k] = v
	}
	return labels
}

// annotationArgs reads key=value arguments, each of which must have a
// value.
func annotationArgs(args []string) (map[string]string, error) {
	annotations := make(map[string]string, len(args))
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return nil, fmt.Errorf("invalid key=value format annotation: %v", a)
		}
		annotations[k] = v
	}
	return annotations, nil
}

var errIDMissing = errors.New("container id must be provided")
