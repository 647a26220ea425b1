package commands

import (
	"flag"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/urfave/cli"
)

func TestDecimalSize(t *testing.T) {
	for size, want := range map[int64]string{
		0:          "0B",
		999:        "999B",
		1000:       "1kB",
		1048576:    "1.049MB", // what the integration tests match in `content active`
		2097152:    "2.097MB",
		123456789:  "123.5MB",
		1 << 40:    "1.1TB",
		3<<20 + 77: "3.146MB",
	} {
		if got := DecimalSize(size); got != want {
			t.Errorf("DecimalSize(%d) = %q, want %q", size, got, want)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	for size, want := range map[int64]string{
		0:          "0.0 B",
		4096:       "4.0 KiB",
		1536:       "1.5 KiB",
		5 << 20:    "5.0 MiB",
		1<<30 - 1:  "1024.0 MiB",
		3 << 40:    "3.0 TiB",
		1023:       "1023.0 B",
		1<<20 + 52: "1.0 MiB",
	} {
		if got := HumanBytes(size); got != want {
			t.Errorf("HumanBytes(%d) = %q, want %q", size, got, want)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		500 * time.Millisecond: "Less than a second",
		time.Second:            "1 second",
		59 * time.Second:       "59 seconds",
		90 * time.Second:       "About a minute",
		59 * time.Minute:       "59 minutes",
		80 * time.Minute:       "About an hour",
		100 * time.Minute:      "2 hours",
		47 * time.Hour:         "47 hours",
		72 * time.Hour:         "3 days",
		20 * 24 * time.Hour:    "2 weeks",
		90 * 24 * time.Hour:    "3 months",
		800 * 24 * time.Hour:   "2 years",
	} {
		if got := HumanDuration(d); got != want {
			t.Errorf("HumanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestFormatLabels(t *testing.T) {
	if got := FormatLabels(nil); got != "" {
		t.Errorf("no labels = %q", got)
	}
	if got := FormatLabels(map[string]string{"z": "1", "a": "b=c", "m": ""}); got != "a=b=c,m=,z=1" {
		t.Errorf("FormatLabels = %q", got)
	}
}

func TestLabelArgs(t *testing.T) {
	got := LabelArgs([]string{"a=b", "flag", "c=", "d=e=f", "a=again"})
	want := map[string]string{"a": "again", "flag": "true", "c": "", "d": "e=f"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LabelArgs = %v, want %v", got, want)
	}
}

func TestObjectWithLabelArgs(t *testing.T) {
	set := flag.NewFlagSet("t", flag.ContinueOnError)
	if err := set.Parse([]string{"obj", "k=v", "x"}); err != nil {
		t.Fatal(err)
	}
	obj, labels := ObjectWithLabelArgs(cli.NewContext(nil, set, nil))
	if obj != "obj" || !reflect.DeepEqual(labels, map[string]string{"k": "v", "x": "true"}) {
		t.Errorf("ObjectWithLabelArgs = %q %v", obj, labels)
	}
}

func TestPrintAsJSON(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := Stdout
	Stdout = f
	defer func() { Stdout = saved }()

	if err := PrintAsJSON(map[string]any{"Name": "x", "Labels": map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	if err := PrintAsJSON(func() {}); err == nil {
		t.Error("a function was printed as JSON")
	}
	b, _ := os.ReadFile(f.Name())
	want := "{\n    \"Labels\": {\n        \"k\": \"v\"\n    },\n    \"Name\": \"x\"\n}\n"
	if string(b) != want {
		t.Errorf("PrintAsJSON wrote %q, want %q", b, want)
	}
}
