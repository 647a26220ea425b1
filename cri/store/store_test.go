package store

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/errdefs"
)

func sandbox(id, name string) *Sandbox {
	return NewSandbox(SandboxMetadata{ID: id, Name: name}, SandboxStatus{})
}

func TestStoreNamesAndPrefixes(t *testing.T) {
	s := New(SandboxKey)
	if err := s.Reserve("web_default_uid_0", "abc123"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reserve("web_default_uid_0", "def456"); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second reservation of a name: %v", err)
	}
	if err := s.Add(sandbox("abc123", "web_default_uid_0")); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(sandbox("abd999", "db_default_uid_0")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   string
		want string
		err  func(error) bool
	}{
		{"abc123", "abc123", nil},
		{"abc", "abc123", nil},
		{"ab", "", errdefs.IsInvalidArgument}, // two match
		{"x", "", errdefs.IsNotFound},
		{"", "", errdefs.IsInvalidArgument},
	} {
		sb, err := s.Get(tc.id)
		if tc.err != nil {
			if !tc.err(err) {
				t.Errorf("Get(%q): %v", tc.id, err)
			}
			continue
		}
		if err != nil || sb.Metadata.ID != tc.want {
			t.Errorf("Get(%q) = %v, %v", tc.id, sb, err)
		}
	}
	if got := s.List(); len(got) != 2 || got[0].Metadata.ID != "abc123" {
		t.Errorf("List: %d", len(got))
	}
	s.Delete("abc123")
	if err := s.Reserve("web_default_uid_0", "def456"); err != nil {
		t.Errorf("name not freed by Delete: %v", err)
	}
	s.Release("web_default_uid_0", "def456")
	if err := s.Add(sandbox("ccc", "web_default_uid_0")); err != nil {
		t.Errorf("name not freed by Release: %v", err)
	}
}

func TestStoreConcurrentReserve(t *testing.T) {
	s := New(SandboxKey)
	var wg sync.WaitGroup
	wins := make(chan string, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			if s.Reserve("same", id) == nil {
				wins <- id
			}
		}(fmt.Sprint(i))
	}
	wg.Wait()
	close(wins)
	if n := len(wins); n != 1 {
		t.Fatalf("%d reservations of one name won", n)
	}
}

func TestContainerStatusPersists(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c1", "status")
	c, err := NewContainer(ContainerMetadata{ID: "c1", Name: "n"}, ContainerStatus{CreatedAt: 1}, file)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status().State() != runtime.ContainerState_CONTAINER_CREATED {
		t.Errorf("state %v", c.Status().State())
	}
	if err := c.UpdateStatus(func(st ContainerStatus) (ContainerStatus, error) {
		st.StartedAt, st.Pid, st.Starting = 2, 42, true
		return st, nil
	}); err != nil {
		t.Fatal(err)
	}
	// A failed update changes nothing, in memory or on disk.
	if err := c.UpdateStatus(func(st ContainerStatus) (ContainerStatus, error) {
		st.FinishedAt = 3
		return st, errdefs.ErrFailedPrecondition
	}); !errdefs.IsFailedPrecondition(err) {
		t.Fatal(err)
	}
	st, err := LoadContainerStatus(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.StartedAt != 2 || st.Pid != 42 || st.FinishedAt != 0 || st.Starting {
		t.Errorf("loaded %+v (Starting is not persisted)", st)
	}
	if st.State() != runtime.ContainerState_CONTAINER_RUNNING || c.Status().FinishedAt != 0 {
		t.Errorf("state %v", st.State())
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	md := SandboxMetadata{ID: "s", Name: "n", IP: "10.88.0.2", NetNSPath: "/var/run/netns/cni-x",
		Config: &runtime.PodSandboxConfig{
			Metadata: &runtime.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "u", Attempt: 1},
			Labels:   map[string]string{"app": "web"},
			Linux:    &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE}}},
		}}
	b, err := MarshalSandboxMetadata(md)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalSandboxMetadata(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.IP != md.IP || got.NetNSPath != md.NetNSPath || got.Config.GetMetadata().GetAttempt() != 1 ||
		got.Config.Labels["app"] != "web" || got.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() != runtime.NamespaceMode_NODE {
		t.Errorf("round trip: %+v", got)
	}
	cmd := ContainerMetadata{ID: "c", SandboxID: "s", LogPath: "/l", Config: &runtime.ContainerConfig{
		Command: []string{"sh"}, Envs: []*runtime.KeyValue{{Key: "A", Value: []byte("b")}}}}
	cb, err := MarshalContainerMetadata(cmd)
	if err != nil {
		t.Fatal(err)
	}
	cgot, err := UnmarshalContainerMetadata(cb)
	if err != nil || cgot.SandboxID != "s" || string(cgot.Config.Envs[0].Value) != "b" || cgot.Config.Command[0] != "sh" {
		t.Errorf("container round trip: %+v, %v", cgot, err)
	}
	if _, err := UnmarshalContainerMetadata([]byte(`{"Config": 5}`)); err == nil {
		t.Error("malformed metadata decoded")
	}
}
