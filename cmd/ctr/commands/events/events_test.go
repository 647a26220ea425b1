package events

import (
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	eventsapi "github.com/llitfkitfk/containerd/api/events"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/events"
)

func TestPrintEnvelope(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := commands.Stdout
	commands.Stdout = f
	defer func() { commands.Stdout = saved }()

	ev, err := events.MarshalEvent(&eventsapi.NamespaceCreate{Name: "ns1", Labels: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	for _, e := range []*events.Envelope{
		{Timestamp: at, Namespace: "default", Topic: "/namespaces/create", Event: ev},
		// Unknown to this ctr: skipped, not fatal.
		{Timestamp: at, Namespace: "default", Topic: "/x", Event: &anypb.Any{TypeUrl: "example.Unknown"}},
		{Timestamp: at, Namespace: "n", Topic: "/empty"},
	} {
		if err := printEnvelope(e); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(f.Name())
	want := "2026-01-02 03:04:05.000006 +0000 UTC default /namespaces/create {\"name\":\"ns1\",\"labels\":{\"k\":\"v\"}}\n" +
		"2026-01-02 03:04:05.000006 +0000 UTC n /empty \n"
	if string(b) != want {
		t.Errorf("printed\n%q\nwant\n%q", b, want)
	}
}
