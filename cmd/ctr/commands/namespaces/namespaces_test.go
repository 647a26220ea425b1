package namespaces

import (
	"strings"
	"testing"

	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
)

func run(args ...string) error {
	app := cli.NewApp()
	app.Flags = commands.GlobalFlags
	app.Commands = []cli.Command{Command}
	app.Writer = &strings.Builder{}
	return app.Run(append([]string{"ctr", "-a", "/nonexistent/socket", "--connect-timeout", "200ms"}, args...))
}

func TestErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"namespaces", "create"}, "please specify a namespace"},
		{[]string{"ns", "label"}, "please specify a namespace"},
		// No daemon: one line naming the address.
		{[]string{"ns", "ls"}, `"/nonexistent/socket"`},
	} {
		err := run(c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line saying %s", strings.Join(c.args, " "), err, c.want)
		}
		if code := commands.ExitCode(err); code != 1 {
			t.Errorf("%s: exit status %d", strings.Join(c.args, " "), code)
		}
	}
}
