// Package events is `ctr events`.
package events

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/urfave/cli"

	// The event types, so that each event can be decoded from its Any.
	_ "github.com/llitfkitfk/containerd/api/events"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/events"
)

// Command is `ctr events`: the daemon's events matching the filters given
// as arguments, one per line, until interrupted.
var Command = cli.Command{
	Name:      "events",
	Aliases:   []string{"event"},
	Usage:     "Display containerd events",
	ArgsUsage: "[<filter>, ...]",
	Action: func(context *cli.Context) error {
		client, ctx, cancel, err := commands.NewClient(context)
		if err != nil {
			return err
		}
		defer cancel()
		defer client.Close()
		ch, errs := client.EventService().Subscribe(ctx, context.Args()...)
		for {
			select {
			case e, ok := <-ch:
				if !ok {
					ch = nil // the error, if any, follows on errs
					continue
				}
				if err := printEnvelope(e); err != nil {
					return err
				}
			case err, ok := <-errs:
				if !ok {
					return nil
				}
				return err
			}
		}
	},
}

// printEnvelope prints "TIMESTAMP NAMESPACE TOPIC EVENT" as containerd's
// ctr does: the time in Go's default layout and the event as the JSON of
// its generated message (field names as in the proto). An event whose
// type this ctr does not know is skipped with a warning.
func printEnvelope(e *events.Envelope) error {
	var out []byte
	if e.Event != nil {
		v, err := events.UnmarshalEvent(e.Event)
		if err != nil {
			fmt.Fprintf(os.Stderr, "cannot unmarshal an event from Any: %v\n", err)
			return nil
		}
		if out, err = json.Marshal(v); err != nil {
			fmt.Fprintf(os.Stderr, "cannot marshal %s into JSON: %v\n", e.Event.GetTypeUrl(), err)
			return nil
		}
	}
	_, err := fmt.Fprintln(commands.Stdout, e.Timestamp, e.Namespace, e.Topic, string(out))
	return err
}
