package registry

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"testing"

	"github.com/llitfkitfk/containerd/internal/testutil"
)

// What a client marshals, the daemon unmarshals to the same registry; the
// credentials stay with the client, and the daemon gets them by asking
// over the auth stream.
func TestMarshalRoundTrip(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	headers := http.Header{"X-Meta": {"a", "b"}, "User-Agent": {"ctr"}}
	client := New("example.com/app:v1", Options{
		Headers:       headers,
		HostDir:       "/etc/containerd/certs.d",
		DefaultScheme: "http",
		Credentials:   StaticCredentials{Ref: "example.com/app:v1", Username: "user", Secret: "pass"},
	})
	streams := testutil.NewStreams()
	a, err := client.MarshalAny(ctx, streams)
	if err != nil {
		t.Fatal(err)
	}
	if a.GetTypeUrl() != "containerd.types.transfer.OCIRegistry" {
		t.Fatalf("type URL %q", a.GetTypeUrl())
	}
	var daemon OCIRegistry
	if err := daemon.UnmarshalAny(ctx, streams, a); err != nil {
		t.Fatal(err)
	}
	if daemon.Image() != client.Image() || daemon.HostDir() != client.HostDir() || daemon.DefaultScheme() != "http" {
		t.Fatalf("daemon's registry %q %q %q, client's %q %q %q", daemon.Image(), daemon.HostDir(), daemon.DefaultScheme(),
			client.Image(), client.HostDir(), client.DefaultScheme())
	}
	// One value per header on the wire: several are joined as a list.
	if want := (http.Header{"X-Meta": {"a, b"}, "User-Agent": {"ctr"}}); !reflect.DeepEqual(daemon.Headers(), want) {
		t.Fatalf("headers %v, want %v", daemon.Headers(), want)
	}
	helper := daemon.CredentialHelper()
	if helper == nil {
		t.Fatal("the daemon's registry has no way to ask for credentials")
	}
	for i := 0; i < 2; i++ { // the stream serves one question after another
		creds, err := helper.GetCredentials(ctx, daemon.Image(), "example.com")
		if err != nil {
			t.Fatal(err)
		}
		if creds.Username != "user" || creds.Secret != "pass" {
			t.Fatalf("credentials %+v", creds)
		}
	}
	// Credentials are for the reference they were given with only.
	creds, err := helper.GetCredentials(ctx, "other.example/x:v1", "other.example")
	if err != nil || creds.Username != "" || creds.Secret != "" {
		t.Fatalf("credentials for another reference: %+v, %v", creds, err)
	}
}

type failingHelper struct{}

func (failingHelper) GetCredentials(context.Context, string, string) (Credentials, error) {
	return Credentials{}, errors.New("keychain locked")
}

// A helper that fails still answers, with nothing, so that the daemon
// goes on anonymously instead of waiting for ever.
func TestMarshalCredentialsFailure(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	streams := testutil.NewStreams()
	a, err := New("example.com/app:v1", Options{Credentials: failingHelper{}}).MarshalAny(ctx, streams)
	if err != nil {
		t.Fatal(err)
	}
	var daemon OCIRegistry
	if err := daemon.UnmarshalAny(ctx, streams, a); err != nil {
		t.Fatal(err)
	}
	creds, err := daemon.CredentialHelper().GetCredentials(ctx, daemon.Image(), "example.com")
	if err != nil || creds.Username != "" || creds.Secret != "" {
		t.Fatalf("credentials %+v, %v; want none", creds, err)
	}
}

// Without credentials no stream is opened and the daemon asks for none.
func TestMarshalAnonymous(t *testing.T) {
	streams := testutil.NewStreams()
	a, err := New("alpine", Options{}).MarshalAny(context.Background(), streams)
	if err != nil {
		t.Fatal(err)
	}
	if ids := streams.IDs(); len(ids) != 0 {
		t.Fatalf("streams opened: %v", ids)
	}
	var daemon OCIRegistry
	if err := daemon.UnmarshalAny(context.Background(), streams, a); err != nil {
		t.Fatal(err)
	}
	if daemon.Image() != "docker.io/library/alpine:latest" || daemon.CredentialHelper() != nil || daemon.Headers() != nil {
		t.Fatalf("daemon's registry: %q, helper %v, headers %v", daemon.Image(), daemon.CredentialHelper(), daemon.Headers())
	}
}
