package leases

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	api "github.com/llitfkitfk/containerd/api/services/leases/v1"
	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/internal/testutil"
	"github.com/llitfkitfk/containerd/leases"
	"github.com/llitfkitfk/containerd/namespaces"
)

// fakeManager is an in-memory, namespaced leases.Manager.
type fakeManager struct {
	mu     sync.Mutex
	leases map[string]map[string]*fakeLease
	seq    int
	syncs  []bool
}

type fakeLease struct {
	lease     leases.Lease
	resources []leases.Resource
}

func (m *fakeManager) get(ctx context.Context, id string) (*fakeLease, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	l, ok := m.leases[ns][id]
	if !ok {
		return nil, fmt.Errorf("lease %q: %w", id, errdefs.ErrNotFound)
	}
	return l, nil
}

func (m *fakeManager) Create(ctx context.Context, opts ...leases.Opt) (leases.Lease, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return leases.Lease{}, err
	}
	var l leases.Lease
	for _, o := range opts {
		if err := o(&l); err != nil {
			return leases.Lease{}, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if l.ID == "" {
		m.seq++
		l.ID = fmt.Sprintf("random-%d", m.seq)
	}
	if m.leases == nil {
		m.leases = map[string]map[string]*fakeLease{}
	}
	if m.leases[ns] == nil {
		m.leases[ns] = map[string]*fakeLease{}
	}
	if _, ok := m.leases[ns][l.ID]; ok {
		return leases.Lease{}, fmt.Errorf("lease %q: %w", l.ID, errdefs.ErrAlreadyExists)
	}
	l.CreatedAt = time.Now().UTC()
	m.leases[ns][l.ID] = &fakeLease{lease: l}
	return l, nil
}

func (m *fakeManager) Delete(ctx context.Context, l leases.Lease, opts ...leases.DeleteOpt) error {
	var o leases.DeleteOptions
	for _, opt := range opts {
		if err := opt(ctx, &o); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.get(ctx, l.ID); err != nil {
		return err
	}
	ns, _ := namespaces.NamespaceRequired(ctx)
	delete(m.leases[ns], l.ID)
	m.syncs = append(m.syncs, o.Synchronous)
	return nil
}

func (m *fakeManager) List(ctx context.Context, filters ...string) ([]leases.Lease, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []leases.Lease
	for _, l := range m.leases[ns] {
		out = append(out, l.lease)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (m *fakeManager) AddResource(ctx context.Context, l leases.Lease, r leases.Resource) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	fl, err := m.get(ctx, l.ID)
	if err != nil {
		return err
	}
	if r.Type == "" || r.ID == "" {
		return fmt.Errorf("resource: %w", errdefs.ErrInvalidArgument)
	}
	fl.resources = append(fl.resources, r)
	return nil
}

func (m *fakeManager) DeleteResource(ctx context.Context, l leases.Lease, r leases.Resource) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	fl, err := m.get(ctx, l.ID)
	if err != nil {
		return err
	}
	if r.Type == "" || r.ID == "" {
		return fmt.Errorf("resource: %w", errdefs.ErrInvalidArgument)
	}
	for i, x := range fl.resources {
		if x == r {
			fl.resources = append(fl.resources[:i], fl.resources[i+1:]...)
			break
		}
	}
	return nil
}

func (m *fakeManager) ListResources(ctx context.Context, l leases.Lease) ([]leases.Resource, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fl, err := m.get(ctx, l.ID)
	if err != nil {
		return nil, err
	}
	return append([]leases.Resource(nil), fl.resources...), nil
}

func setup(t *testing.T) (*fakeManager, api.LeasesClient) {
	m := &fakeManager{}
	svc := &service{local: m}
	return m, api.NewLeasesClient(testutil.Serve(t, svc.Register))
}

func TestLeases(t *testing.T) {
	m, c := setup(t)
	ctx := namespaces.WithNamespace(context.Background(), "ns")

	l, err := c.Create(ctx, &api.CreateRequest{Id: "l1", Labels: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if l.Lease.Id != "l1" || l.Lease.Labels["a"] != "b" || l.Lease.CreatedAt == nil || l.Lease.CreatedAt.AsTime().IsZero() {
		t.Fatalf("created %v", l.Lease)
	}
	anon, err := c.Create(ctx, &api.CreateRequest{})
	if err != nil || anon.Lease.Id == "" {
		t.Fatalf("lease without id: %v %v", anon, err)
	}
	_, err = c.Create(ctx, &api.CreateRequest{Id: "l1"})
	testutil.WantCode(t, err, codes.AlreadyExists)
	_, err = c.Create(context.Background(), &api.CreateRequest{Id: "l2"})
	testutil.WantCode(t, err, codes.FailedPrecondition)

	ls, err := c.List(ctx, &api.ListRequest{})
	if err != nil || len(ls.Leases) != 2 || ls.Leases[0].Id != "l1" {
		t.Fatalf("list %v %v", ls, err)
	}

	content := &api.Resource{Id: "sha256:abc", Type: "content"}
	ingest := &api.Resource{Id: "ref", Type: "ingests"}
	for _, r := range []*api.Resource{content, ingest} {
		if _, err := c.AddResource(ctx, &api.AddResourceRequest{Id: "l1", Resource: r}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.AddResource(ctx, &api.AddResourceRequest{Id: "l1"})
	testutil.WantCode(t, err, codes.InvalidArgument)
	_, err = c.AddResource(ctx, &api.AddResourceRequest{Id: "absent", Resource: content})
	testutil.WantCode(t, err, codes.NotFound)
	rs, err := c.ListResources(ctx, &api.ListResourcesRequest{Id: "l1"})
	if err != nil || len(rs.Resources) != 2 || rs.Resources[0].Id != "sha256:abc" || rs.Resources[1].Type != "ingests" {
		t.Fatalf("resources %v %v", rs, err)
	}
	if _, err := c.DeleteResource(ctx, &api.DeleteResourceRequest{Id: "l1", Resource: content}); err != nil {
		t.Fatal(err)
	}
	rs, _ = c.ListResources(ctx, &api.ListResourcesRequest{Id: "l1"})
	if len(rs.Resources) != 1 || rs.Resources[0].Id != "ref" {
		t.Fatalf("resources after delete %v", rs)
	}
	_, err = c.DeleteResource(ctx, &api.DeleteResourceRequest{Id: "l1"})
	testutil.WantCode(t, err, codes.InvalidArgument)

	if _, err := c.Delete(ctx, &api.DeleteRequest{Id: "l1", Sync: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, &api.DeleteRequest{Id: anon.Lease.Id}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Delete(ctx, &api.DeleteRequest{Id: "l1"})
	testutil.WantCode(t, err, codes.NotFound)
	if !reflect.DeepEqual(m.syncs, []bool{true, false}) {
		t.Fatalf("sync options %v", m.syncs)
	}
	_, err = c.ListResources(ctx, &api.ListResourcesRequest{Id: "l1"})
	testutil.WantCode(t, err, codes.NotFound)
}
