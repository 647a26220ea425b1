package server

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestNetDevStats(t *testing.T) {
	f := filepath.Join(t.TempDir(), "dev")
	// /proc/<pid>/net/dev as the kernel writes it.
	data := `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0:    1096      12    3    0    0     0          0         0      866       9    4    0    0     0       0          0
  eth1: 5 1 0 0 0 0 0 0 7 1 0 0 0 0 0 0
`
	if err := os.WriteFile(f, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := netDevStats(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "eth0" || got[1].Name != "eth1" {
		t.Fatalf("interfaces %v (lo must be left out)", got)
	}
	e := got[0]
	if e.RxBytes.Value != 1096 || e.RxErrors.Value != 3 || e.TxBytes.Value != 866 || e.TxErrors.Value != 4 {
		t.Errorf("eth0 %v", e)
	}
	all, err := readNetDev(f)
	if err != nil {
		t.Fatal(err)
	}
	want := netDevCounters{name: "eth0", rxBytes: 1096, rxPackets: 12, rxErrors: 3, txBytes: 866, txPackets: 9, txErrors: 4}
	if len(all) != 2 || all[0] != want {
		t.Errorf("readNetDev %+v, want eth0 %+v first", all, want)
	}
}

func TestCPUSamplerNanoCores(t *testing.T) {
	var c cpuSampler
	t0 := time.Unix(1000, 0)
	if _, ok := c.nanoCores("a", 1e9, t0); ok {
		t.Fatal("a rate from one sample")
	}
	// 0.5 s of CPU over 2 s: a quarter of a core.
	if nc, ok := c.nanoCores("a", 1.5e9, t0.Add(2*time.Second)); !ok || nc != 250_000_000 {
		t.Errorf("%d %v", nc, ok)
	}
	// A counter that went back (a new cgroup) gives no rate.
	if _, ok := c.nanoCores("a", 1, t0.Add(3*time.Second)); ok {
		t.Error("rate from a reset counter")
	}
	c.forget("a")
	if _, ok := c.nanoCores("a", 5, t0.Add(4*time.Second)); ok {
		t.Error("forgotten sample used")
	}
}

func TestCgroupFileReaders(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kv, err := readKV(write("memory.stat", "anon 4096\ninactive_file 8192\nbad\npgfault x\n"))
	if err != nil || kv["anon"] != 4096 || kv["inactive_file"] != 8192 || len(kv) != 2 {
		t.Errorf("%v %v", kv, err)
	}
	if n, err := readUint(write("memory.max", "max\n")); err != nil || n != 0 {
		t.Errorf("max: %d %v", n, err)
	}
	if n, err := readUint(write("memory.current", "123\n")); err != nil || n != 123 {
		t.Errorf("%d %v", n, err)
	}
}
