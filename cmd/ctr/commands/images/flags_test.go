package images

import (
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/urfave/cli"

	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
)

// runImages runs `ctr images args...` against a daemon that is not there:
// the errors looked for come before any connection.
func runImages(t *testing.T, args ...string) error {
	t.Helper()
	app := cli.NewApp()
	app.Name = "ctr"
	app.Flags = commands.GlobalFlags
	app.Commands = []cli.Command{Command}
	app.Writer, app.ErrWriter = io.Discard, io.Discard
	return app.Run(append([]string{"ctr", "-a", filepath.Join(t.TempDir(), "none.sock"), "--connect-timeout", "1ms", "images"}, args...))
}

func TestFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"pull"}, "please provide an image reference to pull"},
		{[]string{"pull", "a", "b"}, "pull takes one image reference, got 2 arguments"},
		{[]string{"pull", "--platform", "linux/amd64", "--all-platforms", "x"}, "cannot specify both --platform and --all-platforms"},
		{[]string{"pull", "--platform", "linux/amd64/v9/extra", "x"}, "linux/amd64/v9/extra"},
		{[]string{"pull", "--print-chainid", "x"}, `"--print-chainid" requires "--local" flag`},
		{[]string{"pull", "--skip-verify", "x"}, `"--skip-verify" requires "--local" flag`},
		{[]string{"pull", "--local", "--max-concurrent-downloads", "-1", "x"}, "--max-concurrent-downloads must not be negative"},
		{[]string{"push"}, "please provide a remote image reference to push"},
		{[]string{"push", "--local", "--manifest", "sha256:nothex", "x"}, "invalid manifest digest"},
		{[]string{"push", "--manifest", "sha256:" + strings.Repeat("a", 64), "x"}, `"--manifest" requires "--local" flag`},
		{[]string{"import"}, `please provide an archive to import ("-" for stdin)`},
		{[]string{"import", "--digests=false", "--skip-digest-for-named", "x.tar"}, "--skip-digest-for-named must be specified with --digests option"},
		{[]string{"import", "--platform", "linux/amd64/v9/extra", "x.tar"}, "linux/amd64/v9/extra"},
		{[]string{"import", filepath.Join(t.TempDir(), "missing.tar")}, "no such file or directory"},
		{[]string{"export", "out.tar"}, "please provide both an output filename and an image reference to export"},
		{[]string{"export", "--local", "--skip-non-distributable", "out.tar", "x"}, "--skip-non-distributable is not supported with --local"},
		{[]string{"tag"}, "please provide an image reference to tag from"},
		{[]string{"tag", "a"}, "please provide an image reference to tag to"},
		{[]string{"tag", "a", "not/Valid:ref"}, `error parsing reference: "not/Valid:ref" is not a valid repository/tag`},
	} {
		err := runImages(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ctr images %s: error %v, want %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}

func TestLabelArgs(t *testing.T) {
	got := labelArgs([]string{"a=b", "c", "d=e=f", "g="})
	want := map[string]string{"a": "b", "c": "true", "d": "e=f", "g": ""}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("labels %v, want %v", got, want)
	}
	if labelArgs(nil) != nil {
		t.Fatal("no labels should be nil, so that none are sent")
	}
}

func TestCheckReference(t *testing.T) {
	for ref, ok := range map[string]bool{
		"alpine":                true,
		"example.com/app:v1":    true,
		strings.Repeat("a", 64): true, // an image id
		"upper/Case":            false,
		"example.com/app:v1:v2": false,
		"":                      false,
		"app@sha256:short":      false,
	} {
		if err := checkReference(ref); (err == nil) != ok {
			t.Errorf("checkReference(%q) = %v, want ok %v", ref, err, ok)
		}
	}
}
