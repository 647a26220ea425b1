package runc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/cgroups/v3/cgroup2/stats"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// cgroup v2 is read by hand from its interface files: what the shim needs
// of it (memory.events for OOM kills, the metrics) is a few flat files,
// and cgroups/v3's cgroup2 package would bring in eBPF and D-Bus
// libraries that grow every running shim by more than half a megabyte.

const unifiedMountpoint = "/sys/fs/cgroup"

// isUnified is whether the host runs cgroup v2 only.
func isUnified() bool {
	var st unix.Statfs_t
	return unix.Statfs(unifiedMountpoint, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// cgroup2Of is the directory of pid's v2 cgroup.
func cgroup2Of(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return filepath.Join(unifiedMountpoint, filepath.Clean("/"+p)), nil
		}
	}
	return "", fmt.Errorf("pid %d has no cgroup v2", pid)
}

// readKV reads a file of "key value" lines, such as memory.stat.
func readKV(path string) (map[string]uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	kv := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			kv[k] = n
		}
	}
	return kv, nil
}

// fill sets each uint64 field of m named like a key of kv: the metrics
// messages name their fields after the kernel's keys.
func fill(m protoreflect.Message, kv map[string]uint64) {
	fields := m.Descriptor().Fields()
	for k, v := range kv {
		if fd := fields.ByName(protoreflect.Name(k)); fd != nil && fd.Kind() == protoreflect.Uint64Kind {
			m.Set(fd, protoreflect.ValueOfUint64(v))
		}
	}
}

// readUint reads a file holding one number; "max" is the largest.
func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return math.MaxUint64, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// stats2 reads the v2 metrics of the cgroup at dir. Controllers that are
// not enabled there are left out.
func stats2(dir string) (*stats.Metrics, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	m := &stats.Metrics{}
	num := func(name string) uint64 {
		n, _ := readUint(filepath.Join(dir, name))
		return n
	}
	if _, err := os.Stat(filepath.Join(dir, "pids.current")); err == nil {
		m.Pids = &stats.PidsStat{Current: num("pids.current"), Limit: num("pids.max")}
		if m.Pids.Limit == math.MaxUint64 {
			m.Pids.Limit = 0 // as cgroups/v3 reports no limit
		}
	}
	if kv, err := readKV(filepath.Join(dir, "cpu.stat")); err == nil {
		m.CPU = &stats.CPUStat{}
		fill(m.CPU.ProtoReflect(), kv)
	}
	if kv, err := readKV(filepath.Join(dir, "memory.stat")); err == nil {
		m.Memory = &stats.MemoryStat{}
		fill(m.Memory.ProtoReflect(), kv)
		m.Memory.Usage = num("memory.current")
		m.Memory.UsageLimit = num("memory.max")
		m.Memory.SwapUsage = num("memory.swap.current")
		m.Memory.SwapLimit = num("memory.swap.max")
		m.Memory.MaxUsage = num("memory.peak")
		m.Memory.SwapMaxUsage = num("memory.swap.peak")
	}
	if kv, err := readKV(filepath.Join(dir, "memory.events")); err == nil {
		m.MemoryEvents = &stats.MemoryEvents{}
		fill(m.MemoryEvents.ProtoReflect(), kv)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "io.stat")); err == nil {
		m.Io = &stats.IOStat{Usage: parseIOStat(string(b))}
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "hugetlb.*.current")); len(matches) > 0 {
		for _, cur := range matches {
			size := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(cur), "hugetlb."), ".current")
			h := &stats.HugeTlbStat{Pagesize: size, Current: num("hugetlb." + size + ".current"), Max: num("hugetlb." + size + ".max")}
			if kv, err := readKV(filepath.Join(dir, "hugetlb."+size+".events")); err == nil {
				h.Failcnt = kv["max"]
			}
			m.Hugetlb = append(m.Hugetlb, h)
		}
	}
	return m, nil
}

// parseIOStat parses io.stat: "MAJ:MIN rbytes=N wbytes=N rios=N wios=N ...".
func parseIOStat(s string) []*stats.IOEntry {
	var out []*stats.IOEntry
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		maj, min, ok := strings.Cut(f[0], ":")
		if !ok {
			continue
		}
		e := &stats.IOEntry{}
		e.Major, _ = strconv.ParseUint(maj, 10, 64)
		e.Minor, _ = strconv.ParseUint(min, 10, 64)
		kv := map[string]uint64{}
		for _, p := range f[1:] {
			if k, v, ok := strings.Cut(p, "="); ok {
				kv[k], _ = strconv.ParseUint(v, 10, 64)
			}
		}
		fill(e.ProtoReflect(), kv)
		out = append(out, e)
	}
	return out
}

// oomWatch2 calls oom each time memory.events in dir counts another OOM
// kill, until stop or until the cgroup is removed.
type oomWatch2 struct {
	once sync.Once
	f    *os.File // the inotify instance
}

func watchOOM2(dir string, oom func()) (*oomWatch2, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	events := filepath.Join(dir, "memory.events")
	if _, err := unix.InotifyAddWatch(fd, events, unix.IN_MODIFY); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watch %s: %w", events, err)
	}
	kills := func() uint64 {
		kv, _ := readKV(events)
		return kv["oom_kill"]
	}
	// Non-blocking, so that reads go through Go's poller and stop's
	// Close ends one that waits.
	w := &oomWatch2{f: os.NewFile(uintptr(fd), "inotify")}
	last := kills()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := w.f.Read(buf)
			if err != nil {
				return // stopped
			}
			ignored := false
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				// struct inotify_event: wd, mask, cookie, len, name.
				mask := binary.NativeEndian.Uint32(buf[off+4:])
				ignored = ignored || mask&unix.IN_IGNORED != 0
				off += unix.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(buf[off+12:]))
			}
			if k := kills(); k > last {
				last = k
				oom()
			}
			if ignored {
				return // the file went with its cgroup
			}
		}
	}()
	return w, nil
}

func (w *oomWatch2) stop() {
	w.once.Do(func() { w.f.Close() })
}
