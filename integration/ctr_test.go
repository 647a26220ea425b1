//go:build integration

package integration

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestCtrVersion(t *testing.T) {
	d := newDaemon(t, "")
	d.start()
	out := d.ctr("version")
	server := out[strings.Index(out, "Server:"):]
	if !regexp.MustCompile(`UUID: [0-9a-f-]{36}`).MatchString(server) {
		t.Fatalf("ctr version shows no server UUID:\n%s", out)
	}
	// The UUID is the daemon's identity and survives a restart.
	d.kill()
	d2 := d.restart()
	if out2 := d2.ctr("version"); !strings.Contains(out2, regexp.MustCompile(`UUID: \S+`).FindString(server)) {
		t.Fatalf("UUID changed across restart:\n%s\n%s", server, out2)
	}
}

func TestCtrPluginsLs(t *testing.T) {
	d := newDaemon(t, "")
	d.start()
	out := d.ctr("plugins", "ls")
	want := []string{
		"io.containerd.event.v1 exchange",
		"io.containerd.metadata.v1 bolt",
		"io.containerd.grpc.v1 version",
		"io.containerd.grpc.v1 healthcheck",
		"io.containerd.grpc.v1 introspection",
		"io.containerd.grpc.v1 namespaces",
		"io.containerd.grpc.v1 events",
		// The local services the gRPC services stand on, with
		// containerd's ids.
		"io.containerd.service.v1 content-service",
		"io.containerd.service.v1 images-service",
		"io.containerd.service.v1 containers-service",
		"io.containerd.service.v1 leases-service",
		"io.containerd.service.v1 namespaces-service",
		"io.containerd.service.v1 snapshots-service",
		"io.containerd.service.v1 diff-service",
		"io.containerd.service.v1 tasks-service",
		"io.containerd.service.v1 introspection-service",
	}
	seen := map[string]bool{}
	platforms := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) != 4 {
			t.Fatalf("odd plugins line %q", line)
		}
		if status := f[3]; status != "ok" {
			t.Errorf("plugin %s.%s has status %s", f[0], f[1], status)
		}
		seen[f[0]+" "+f[1]] = true
		platforms[f[0]+" "+f[1]] = f[2]
	}
	for _, w := range want {
		if !seen[w] {
			t.Errorf("plugins ls lacks %s:\n%s", w, out)
		}
	}
	// The runtime, the snapshotters and the differ name the host's
	// platform alike, as clients compare them before they unpack.
	host := platforms["io.containerd.runtime.v2 task"]
	for _, p := range []string{"io.containerd.snapshotter.v1 overlayfs", "io.containerd.snapshotter.v1 naive", "io.containerd.differ.v1 walking"} {
		if platforms[p] != host || host == "-" {
			t.Errorf("%s reports platform %q, the runtime %q", p, platforms[p], host)
		}
	}
	// Filters reach the daemon: only the gRPC services.
	filtered := d.ctr("plugins", "ls", "type==io.containerd.grpc.v1")
	if strings.Contains(filtered, "bolt") || !strings.Contains(filtered, "introspection") {
		t.Errorf("filtered plugins ls:\n%s", filtered)
	}
}

func TestCtrNamespaces(t *testing.T) {
	d := newDaemon(t, "")
	d.start()
	d.ctr("namespaces", "create", "t1", "a=b")
	if out := d.ctr("namespaces", "ls"); !regexp.MustCompile(`(?m)^t1\s+a=b\s*$`).MatchString(out) {
		t.Fatalf("namespaces ls after create:\n%s", out)
	}
	if out, err := d.ctrErr("namespaces", "create", "t1"); err == nil || !strings.Contains(out, "already exists") {
		t.Fatalf("duplicate create: %v\n%s", err, out)
	}
	if out, err := d.ctrErr("namespaces", "create", "bad/name"); err == nil || !strings.Contains(out, "invalid") {
		t.Fatalf("invalid name: %v\n%s", err, out)
	}
	d.ctr("namespaces", "label", "t1", "a=c", "x=y")
	if out := d.ctr("namespaces", "ls"); !regexp.MustCompile(`(?m)^t1\s+a=c,x=y\s*$`).MatchString(out) {
		t.Fatalf("namespaces ls after label:\n%s", out)
	}
	d.ctr("namespaces", "label", "t1", "x=")
	if out := d.ctr("namespaces", "ls"); !regexp.MustCompile(`(?m)^t1\s+a=c\s*$`).MatchString(out) {
		t.Fatalf("namespaces ls after removing a label:\n%s", out)
	}
	d.ctr("namespaces", "rm", "t1")
	if out := d.ctr("namespaces", "ls"); strings.Contains(out, "t1") {
		t.Fatalf("t1 still listed after rm:\n%s", out)
	}
}

func TestCtrEvents(t *testing.T) {
	d := newDaemon(t, "")
	d.start()
	i := 0
	d.awaitEvent(func(line string) bool {
		return strings.Contains(line, "/namespaces/create") && strings.Contains(line, `"name":"ev`)
	}, func() {
		i++
		d.ctr("namespaces", "create", "ev"+strconv.Itoa(i))
	})
}
