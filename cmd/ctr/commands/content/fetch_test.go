package content

import (
	"flag"
	"fmt"
	"testing"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli"
)

func TestFetchPlatforms(t *testing.T) {
	s390x := ocispec.Platform{OS: "linux", Architecture: "s390x"}
	ppc := ocispec.Platform{OS: "linux", Architecture: "ppc64le"}
	for _, c := range []struct {
		args        []string
		matches     []bool // s390x, ppc64le, this machine
		allMetadata bool
	}{
		{nil, []bool{false, false, true}, true},
		{[]string{"--skip-metadata"}, []bool{false, false, true}, false},
		{[]string{"--platform", "linux/s390x"}, []bool{true, false, false}, true},
		{[]string{"--platform", "linux/s390x", "--platform", "linux/ppc64le"}, []bool{true, true, false}, true},
		{[]string{"--all-platforms"}, []bool{true, true, true}, true},
		{[]string{"--metadata-only"}, []bool{false, false, false}, true},
	} {
		set := flag.NewFlagSet("fetch", flag.ContinueOnError)
		for _, f := range fetchCommand.Flags {
			f.Apply(set)
		}
		if err := set.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		m, all, err := fetchPlatforms(cli.NewContext(nil, set, nil))
		if err != nil {
			t.Fatal(err)
		}
		got := []bool{m.Match(s390x), m.Match(ppc), m.Match(platforms.DefaultSpec())}
		if fmt.Sprint(got) != fmt.Sprint(c.matches) || all != c.allMetadata {
			t.Errorf("%v: matches %v, all metadata %v; want %v, %v", c.args, got, all, c.matches, c.allMetadata)
		}
	}
}
