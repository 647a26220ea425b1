package content

import (
	"strings"
	"testing"

	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
)

// run runs `ctr content args...` as ctr's main does, against a socket
// that is not there: argument errors must come before any connection.
func run(args ...string) error {
	app := cli.NewApp()
	app.Flags = commands.GlobalFlags
	app.Commands = []cli.Command{Command}
	app.Writer = &strings.Builder{}
	return app.Run(append([]string{"ctr", "-a", "/nonexistent/socket", "content"}, args...))
}

func TestArgumentErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "sha256:abc"}, `invalid digest "sha256:abc"`},
		{[]string{"get"}, "a digest is required"},
		{[]string{"label", "nodigest", "a=b"}, `invalid digest "nodigest"`},
		{[]string{"ingest"}, "must specify a transaction reference"},
		{[]string{"ingest", "--expected-digest", "md5:x", "ref"}, `--expected-digest: invalid digest "md5:x"`},
		{[]string{"ingest", "--expected-size", "-1", "ref"}, "invalid --expected-size -1"},
		{[]string{"edit", "--editor", "true", "bad"}, `invalid digest "bad"`},
		{[]string{"fetch"}, "please provide an image reference"},
		{[]string{"fetch", "--platform", "not/a/valid/platform/at/all", "example.com/x:1"}, "--platform"},
	} {
		err := run(c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("content %s: error %v, want one line saying %q", strings.Join(c.args, " "), err, c.want)
		}
		if code := commands.ExitCode(err); code != 1 {
			t.Errorf("content %s: exit status %d", strings.Join(c.args, " "), code)
		}
	}
}
