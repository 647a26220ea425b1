package spec

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/oci"
)

// The profile names of the CRI's deprecated string fields
// (seccomp_profile_path, apparmor_profile) and of unset_seccomp_profile.
const (
	profileRuntimeDefault = "runtime/default"
	profileDockerDefault  = "docker/default"
	profileUnconfined     = "unconfined"
	profileLocalhost      = "localhost/"
)

// maxSeccompProfileSize bounds a localhost profile file: a profile is a
// few kilobytes; a huge file (or a device) is a mistake.
const maxSeccompProfileSize = 4 << 20

// securityProfile turns a deprecated profile string into a profile:
// "" and runtime/default (docker/default) the runtime's default,
// "unconfined", or localhost/<path>.
func securityProfile(what, name string) (*runtime.SecurityProfile, error) {
	switch name {
	case "", profileRuntimeDefault, profileDockerDefault:
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}, nil
	case profileUnconfined:
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}, nil
	}
	ref, ok := strings.CutPrefix(name, profileLocalhost)
	if !ok {
		return nil, fmt.Errorf("invalid %s profile %q: want runtime/default, unconfined or localhost/<path>: %w", what, name, errdefs.ErrInvalidArgument)
	}
	return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: ref}, nil
}

// seccompProfile is the seccomp profile a process gets: the security
// context's, else its deprecated path, else the config's
// unset_seccomp_profile; nil for none (unconfined).
func seccompProfile(sp *runtime.SecurityProfile, deprecatedPath, unset string) (*runtime.SecurityProfile, error) {
	if sp != nil {
		return sp, nil
	}
	if deprecatedPath != "" {
		return securityProfile("seccomp", deprecatedPath)
	}
	if unset != "" {
		return securityProfile("unset_seccomp_profile", unset)
	}
	return nil, nil
}

// withSeccomp applies profile sp; privileged processes get none. It must
// come after the capabilities are set: the default profile allows some
// system calls only to processes with the capabilities they need.
func withSeccomp(sp *runtime.SecurityProfile, privileged bool) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		if privileged || sp == nil {
			return nil
		}
		if sp.ProfileType != runtime.SecurityProfile_Localhost && sp.LocalhostRef != "" {
			return fmt.Errorf("seccomp: localhost_ref %q is only for profile type Localhost: %w", sp.LocalhostRef, errdefs.ErrInvalidArgument)
		}
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		switch sp.ProfileType {
		case runtime.SecurityProfile_Unconfined:
			s.Linux.Seccomp = nil
			return nil
		case runtime.SecurityProfile_RuntimeDefault:
			if s.Process == nil || s.Process.Capabilities == nil {
				s.Process = orEmptyProcess(s.Process)
				s.Process.Capabilities = &specs.LinuxCapabilities{}
			}
			p, err := seccomp.GetDefaultProfile(s)
			if err != nil {
				return fmt.Errorf("seccomp: default profile: %w", err)
			}
			s.Linux.Seccomp = p
			return nil
		case runtime.SecurityProfile_Localhost:
			p, err := loadSeccompProfile(strings.TrimPrefix(sp.LocalhostRef, profileLocalhost), s)
			if err != nil {
				return err
			}
			s.Linux.Seccomp = p
			return nil
		default:
			return fmt.Errorf("seccomp: unknown profile type %d: %w", sp.ProfileType, errdefs.ErrInvalidArgument)
		}
	}
}

func orEmptyProcess(p *specs.Process) *specs.Process {
	if p == nil {
		return &specs.Process{}
	}
	return p
}

// loadSeccompProfile reads a localhost seccomp profile: JSON in the OCI
// spec's form or docker's (with archMap, includes and excludes).
func loadSeccompProfile(file string, s *specs.Spec) (*specs.LinuxSeccomp, error) {
	if file == "" || !strings.HasPrefix(file, "/") {
		return nil, fmt.Errorf("seccomp: localhost profile %q: want an absolute path: %w", file, errdefs.ErrInvalidArgument)
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("seccomp: localhost profile: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("seccomp: localhost profile: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("seccomp: localhost profile %s is not a regular file: %w", file, errdefs.ErrInvalidArgument)
	}
	p, err := io.ReadAll(io.LimitReader(f, maxSeccompProfileSize+1))
	if err != nil {
		return nil, fmt.Errorf("seccomp: read localhost profile %s: %w", file, err)
	}
	if len(p) > maxSeccompProfileSize {
		return nil, fmt.Errorf("seccomp: localhost profile %s is larger than %d bytes: %w", file, maxSeccompProfileSize, errdefs.ErrInvalidArgument)
	}
	if s.Process == nil || s.Process.Capabilities == nil {
		s.Process = orEmptyProcess(s.Process)
		s.Process.Capabilities = &specs.LinuxCapabilities{}
	}
	prof, err := seccomp.LoadProfile(string(p), s)
	if err != nil {
		return nil, fmt.Errorf("seccomp: localhost profile %s: %w: %w", file, err, errdefs.ErrInvalidArgument)
	}
	return prof, nil
}

// checkAppArmor accepts the AppArmor profiles this daemon can honour:
// none, or unconfined. It applies no AppArmor profiles, so asking for one
// is an error rather than a container silently less confined than asked.
func checkAppArmor(sp *runtime.SecurityProfile, deprecated string) error {
	if sp == nil && deprecated != "" {
		var err error
		if sp, err = securityProfile("apparmor", deprecated); err != nil {
			return err
		}
	}
	if sp == nil || sp.ProfileType == runtime.SecurityProfile_Unconfined {
		return nil
	}
	name := "runtime/default"
	if sp.ProfileType == runtime.SecurityProfile_Localhost {
		name = profileLocalhost + sp.LocalhostRef
	}
	return fmt.Errorf("apparmor profile %s: this daemon does not support AppArmor (only unconfined): %w", name, errdefs.ErrNotImplemented)
}

// withCapabilities applies the security context's capability changes:
// "ALL" in add grants allCaps, "ALL" in drop removes every capability,
// before the single adds and drops (so add ALL, drop CHOWN is all but
// CAP_CHOWN). CRI names have no CAP_ prefix; one is accepted anyway.
func withCapabilities(c *runtime.Capability, allCaps []string) oci.SpecOpts {
	if c == nil {
		return func(context.Context, oci.Client, *containers.Container, *specs.Spec) error { return nil }
	}
	var opts []oci.SpecOpts
	isAll := func(x string) bool { return strings.EqualFold(x, "ALL") }
	capName := func(x string) string {
		x = strings.ToUpper(x)
		if strings.HasPrefix(x, "CAP_") {
			return x
		}
		return "CAP_" + x
	}
	var add, drop []string
	for _, x := range c.GetAddCapabilities() {
		if isAll(x) {
			opts = append(opts, oci.WithCapabilities(allCaps))
			continue
		}
		add = append(add, capName(x))
	}
	for _, x := range c.GetDropCapabilities() {
		if isAll(x) {
			opts = append(opts, oci.WithCapabilities(nil))
			continue
		}
		drop = append(drop, capName(x))
	}
	opts = append(opts, oci.WithAddedCapabilities(add), oci.WithDroppedCapabilities(drop))
	return oci.Compose(opts...)
}

// withoutAmbientCapabilities clears the ambient set: what non-root plus
// capabilities means is not defined by Kubernetes, and docker grants
// none.
func withoutAmbientCapabilities(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
	if s.Process != nil && s.Process.Capabilities != nil {
		s.Process.Capabilities.Ambient = nil
	}
	return nil
}
