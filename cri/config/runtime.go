package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/llitfkitfk/containerd/api/types/runc/options"
	"github.com/llitfkitfk/containerd/errdefs"
)

// RuncOptions returns runtimes.<name>.options as runc's options message.
// Keys are the message's Go field names as containerd's config uses them
// (BinaryName, Root, SystemdCgroup, NoPivotRoot, NoNewKeyring, ShimCgroup,
// IoUid, IoGid, CriuImagePath, CriuWorkPath); an unknown key or a value of
// the wrong type is an error naming it, so a misspelt option does not
// silently do nothing.
func (r Runtime) RuncOptions() (*options.Options, error) {
	o := &options.Options{}
	keys := make([]string, 0, len(r.Options))
	for k := range r.Options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := r.Options[k]
		var err error
		switch k {
		case "BinaryName":
			o.BinaryName, err = asString(v)
		case "Root":
			o.Root, err = asString(v)
		case "ShimCgroup":
			o.ShimCgroup, err = asString(v)
		case "CriuImagePath":
			o.CriuImagePath, err = asString(v)
		case "CriuWorkPath":
			o.CriuWorkPath, err = asString(v)
		case "SystemdCgroup":
			o.SystemdCgroup, err = asBool(v)
		case "NoPivotRoot":
			o.NoPivotRoot, err = asBool(v)
		case "NoNewKeyring":
			o.NoNewKeyring, err = asBool(v)
		case "IoUid":
			o.IoUid, err = asUint32(v)
		case "IoGid":
			o.IoGid, err = asUint32(v)
		case "CriuPath", "Interval", "TaskApiAddress", "TaskApiVersion":
			// containerd accepts these; they mean nothing to runc here.
		default:
			if strings.Contains(k, "_") {
				return nil, fmt.Errorf("unknown option %q (the keys are Go field names, such as SystemdCgroup): %w", k, errdefs.ErrInvalidArgument)
			}
			return nil, fmt.Errorf("unknown option %q: %w", k, errdefs.ErrInvalidArgument)
		}
		if err != nil {
			return nil, fmt.Errorf("option %s: %w", k, err)
		}
	}
	return o, nil
}

func asString(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%v is a %T, want a string: %w", v, v, errdefs.ErrInvalidArgument)
	}
	return s, nil
}

func asBool(v any) (bool, error) {
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("%v is a %T, want true or false: %w", v, v, errdefs.ErrInvalidArgument)
	}
	return b, nil
}

func asUint32(v any) (uint32, error) {
	n, ok := v.(int64) // BurntSushi/toml decodes integers as int64
	if !ok || n < 0 || n > 1<<32-1 {
		return 0, fmt.Errorf("%v is not a uid or gid: %w", v, errdefs.ErrInvalidArgument)
	}
	return uint32(n), nil
}
