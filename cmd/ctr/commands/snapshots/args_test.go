package snapshots

import (
	"strings"
	"testing"

	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
)

func TestArgumentErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"label"}, "a snapshot key is required"},
		{[]string{"diff"}, "snapshot id must be provided"},
	} {
		app := cli.NewApp()
		app.Flags = commands.GlobalFlags
		app.Commands = []cli.Command{Command}
		app.Writer = &strings.Builder{}
		err := app.Run(append([]string{"ctr", "-a", "/nonexistent/socket", "snapshots"}, c.args...))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("snapshots %s: error %v, want %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}
