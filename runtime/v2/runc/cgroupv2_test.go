package runc

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The v2 files as a kernel writes them, in a directory standing for a
// container's cgroup: this host may run cgroup v1.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStats2(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"pids.current":        "3\n",
		"pids.max":            "max\n",
		"cpu.stat":            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 7\nnr_throttled 2\nthrottled_usec 40\n",
		"memory.stat":         "anon 4096\nfile 8192\nkernel_stack 16384\npgfault 99\nunknown_key 5\n",
		"memory.current":      "123456\n",
		"memory.max":          "16777216\n",
		"memory.swap.current": "0\n",
		"memory.swap.max":     "max\n",
		"memory.events":       "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n",
		"io.stat":             "8:0 rbytes=1024 wbytes=2048 rios=3 wios=4 dbytes=0 dios=0\n",
		"hugetlb.2MB.current": "0\n",
		"hugetlb.2MB.max":     "max\n",
	})
	m, err := stats2(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p := m.GetPids(); p.GetCurrent() != 3 || p.GetLimit() != 0 {
		t.Errorf("pids %v", p)
	}
	if c := m.GetCPU(); c.GetUsageUsec() != 1500 || c.GetUserUsec() != 1000 || c.GetSystemUsec() != 500 ||
		c.GetNrPeriods() != 7 || c.GetNrThrottled() != 2 || c.GetThrottledUsec() != 40 {
		t.Errorf("cpu %v", c)
	}
	mem := m.GetMemory()
	if mem.GetAnon() != 4096 || mem.GetFile() != 8192 || mem.GetKernelStack() != 16384 || mem.GetPgfault() != 99 ||
		mem.GetUsage() != 123456 || mem.GetUsageLimit() != 16<<20 || mem.GetSwapLimit() != math.MaxUint64 {
		t.Errorf("memory %v", mem)
	}
	if ev := m.GetMemoryEvents(); ev.GetMax() != 12 || ev.GetOom() != 2 || ev.GetOomKill() != 1 {
		t.Errorf("memory events %v", ev)
	}
	if io := m.GetIo().GetUsage(); len(io) != 1 || io[0].GetMajor() != 8 || io[0].GetMinor() != 0 ||
		io[0].GetRbytes() != 1024 || io[0].GetWbytes() != 2048 || io[0].GetRios() != 3 || io[0].GetWios() != 4 {
		t.Errorf("io %v", io)
	}
	if h := m.GetHugetlb(); len(h) != 1 || h[0].GetPagesize() != "2MB" || h[0].GetMax() != math.MaxUint64 {
		t.Errorf("hugetlb %v", h)
	}
	c := &taskCgroup{v2: dir}
	a, err := c.stats()
	if err != nil || a.GetTypeUrl() != "io.containerd.cgroups.v2.Metrics" {
		t.Errorf("stats Any %v, %v", a.GetTypeUrl(), err)
	}
	if _, err := stats2(filepath.Join(dir, "gone")); err == nil {
		t.Error("stats of a missing cgroup")
	}
}

// An OOM kill shows as a higher oom_kill count in memory.events.
func TestWatchOOM2(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "memory.events")
	write := func(kills string) {
		if err := os.WriteFile(events, []byte("low 0\nhigh 0\nmax 3\noom 1\noom_kill "+kills+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("0")
	ooms := make(chan struct{}, 10)
	c := &taskCgroup{v2: dir}
	if err := c.watchOOM(func() { ooms <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	expect := func(n int) {
		t.Helper()
		time.Sleep(100 * time.Millisecond)
		if len(ooms) != n {
			t.Fatalf("%d OOM events, want %d", len(ooms), n)
		}
	}
	write("0") // other counters move: no OOM kill
	expect(0)
	write("1")
	expect(1)
	write("1")
	expect(1)
	write("3")
	expect(2)
	c.stop()
	write("4")
	expect(2)
}
