package run

import (
	"encoding/csv"
	"errors"
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

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

// parseRlimitNofile reads --rlimit-nofile, "soft:hard" or one number for
// both.
func parseRlimitNofile(v string) (*specs.POSIXRlimit, error) {
	softS, hardS, found := strings.Cut(v, ":")
	if !found {
		hardS = softS
	}
	soft, err := strconv.ParseUint(softS, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("failed to parse rlimit-nofile %q: %w", v, err)
	}
	hard, err := strconv.ParseUint(hardS, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("failed to parse rlimit-nofile %q: %w", v, err)
	}
	if soft > hard {
		return nil, fmt.Errorf("rlimit-nofile %q: soft limit above the hard one", v)
	}
	return &specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: soft, Hard: hard}, nil
}
