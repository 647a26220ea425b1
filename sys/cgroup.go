package sys

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cgroupRoot is where cgroup hierarchies are mounted; a variable for tests.
var cgroupRoot = "/sys/fs/cgroup"

// JoinCgroup moves process pid into the cgroup at path (relative to each
// hierarchy's root), creating it where missing. On the unified hierarchy
// that is one directory; on cgroup v1 it is done in every mounted
// controller, so that the daemon, and the shims it starts, are accounted
// where the operator's [cgroup] path says.
func JoinCgroup(path string, pid int) error {
	path = filepath.Clean("/" + path)
	if path == "/" {
		return errors.New("cgroup path must not be the root")
	}
	var hierarchies []string
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		hierarchies = []string{cgroupRoot}
	} else {
		entries, err := os.ReadDir(cgroupRoot)
		if err != nil {
			return fmt.Errorf("list cgroup hierarchies: %w", err)
		}
		for _, e := range entries {
			dir := filepath.Join(cgroupRoot, e.Name())
			// Controllers mounted together appear once more as symlinks.
			if e.IsDir() && !strings.Contains(e.Name(), ",") {
				if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err == nil {
					hierarchies = append(hierarchies, dir)
				}
			}
		}
	}
	if len(hierarchies) == 0 {
		return fmt.Errorf("no cgroup hierarchy under %s", cgroupRoot)
	}
	for _, h := range hierarchies {
		dir := filepath.Join(h, path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		if err := inheritCpuset(h, dir); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("join cgroup %s: %w", dir, err)
		}
	}
	return nil
}

// inheritCpuset fills an empty v1 cpuset cgroup's cpus and mems from its
// nearest parent that has them: the kernel refuses processes in a cpuset
// with none.
func inheritCpuset(hierarchy, dir string) error {
	for _, file := range []string{"cpuset.cpus", "cpuset.mems"} {
		if b, err := os.ReadFile(filepath.Join(dir, file)); err != nil || strings.TrimSpace(string(b)) != "" {
			continue // not a cpuset hierarchy, or already set
		}
		// Set from the top down, since each level takes only what its
		// parent has.
		rel, err := filepath.Rel(hierarchy, dir)
		if err != nil {
			return err
		}
		parent := hierarchy
		for _, part := range strings.Split(rel, string(filepath.Separator)) {
			child := filepath.Join(parent, part)
			if b, _ := os.ReadFile(filepath.Join(child, file)); strings.TrimSpace(string(b)) == "" {
				v, err := os.ReadFile(filepath.Join(parent, file))
				if err != nil {
					return fmt.Errorf("read %s of %s: %w", file, parent, err)
				}
				if err := os.WriteFile(filepath.Join(child, file), v, 0o644); err != nil {
					return fmt.Errorf("set %s of %s: %w", file, child, err)
				}
			}
			parent = child
		}
	}
	return nil
}
