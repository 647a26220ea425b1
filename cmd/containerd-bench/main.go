// Command containerd-bench runs the same workloads against this daemon,
// containerd 2.x and the distribution's containerd 1.6, and prints them
// side by side with the ratios of ours to each.
//
//	go run ./cmd/containerd-bench -ours bin/containerd [-theirs bin/containerd2/containerd] [-distro /usr/bin/containerd]
//
// Every daemon runs in a fresh temporary directory with its own root, state,
// sockets and a config file written here, so the host's containerd (its
// /etc, /var/lib, /run and /opt directories) is never read or touched.
package main

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// options are the knobs the flags set.
type options struct {
	runs    int // start-ups per daemon
	rounds  int // measurements per daemon of the other workloads
	callers int // parallel callers
	calls   int // calls per caller
	only    string
	keep    bool
	// mixedTime is how long the mixed workload loads a daemon per round.
	mixedTime time.Duration
}

// bench is one comparison: the daemons and the directory their instances
// live in. theirs is containerd 2.x, the daemon every workload compares
// with; distro, the distribution's containerd 1.6, is the third column of
// the workloads the default driver measures, nil with -distro ”.
type bench struct {
	opts                 options
	ours, theirs, distro *flavor
	tmp                  string

	mu   sync.Mutex
	seq  int
	live map[*daemon]bool

	noFreshFS sync.Once // warned that rounds share a filesystem
}

// hostPaths are the host containerd's directories, which no daemon here
// may use.
var hostPaths = []string{"/var/lib/containerd", "/run/containerd", "/etc/containerd", "/opt/containerd"}

func main() {
	if err := isolate(); err != nil {
		fmt.Fprintln(os.Stderr, "containerd-bench:", err)
		os.Exit(1)
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "containerd-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		opts                 options
		oursPath             string
		oursShim, theirsShim string
		theirsPath           string
		distroPath           string
		distroShim           string
	)
	flag.StringVar(&oursPath, "ours", "", "this project's containerd binary (required)")
	flag.StringVar(&theirsPath, "theirs", "",
		"containerd 2.x, the daemon every workload compares with (default: containerd2/containerd beside -ours, which make test-deps builds with script/containerd2.sh)")
	flag.StringVar(&distroPath, "distro", "",
		"the distribution's containerd 1.6, a third column where all daemons are measured alike (default: /usr/bin/containerd, else containerd on PATH; -distro '' leaves it out)")
	flag.StringVar(&oursShim, "shim", "", "the shim ours runs containers through (default: "+shimName+" beside -ours)")
	flag.StringVar(&theirsShim, "theirs-shim", "", "the shim theirs runs containers through (default: "+shimName+" beside -theirs)")
	flag.StringVar(&distroShim, "distro-shim", "", "the shim -distro runs containers through (default: "+shimName+" beside -distro)")
	flag.IntVar(&opts.runs, "runs", 10, "start-ups per daemon in the startup workload")
	flag.IntVar(&opts.rounds, "rounds", 3, "rounds per daemon of the other workloads, alternating; each metric is the median of its rounds")
	flag.IntVar(&opts.callers, "callers", 64, "parallel callers")
	flag.IntVar(&opts.calls, "calls", 500, "calls per caller per round")
	flag.DurationVar(&opts.mixedTime, "mixed-time", 10*time.Second, "how long the mixed workload loads each daemon per round")
	flag.StringVar(&opts.only, "only", "", "run only the named workload")
	flag.BoolVar(&opts.keep, "keep", false, "keep each daemon's directory (config, log) instead of removing it")
	flag.Usage = usage
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	distroSet := false
	flag.Visit(func(f *flag.Flag) { distroSet = distroSet || f.Name == "distro" })

	todo, err := selectWorkloads(opts.only)
	if err != nil {
		return err
	}
	if opts.runs < 1 || opts.rounds < 1 || opts.callers < 1 || opts.calls < 1 {
		return errors.New("-runs, -rounds, -callers and -calls must be at least 1")
	}
	if opts.mixedTime <= 0 {
		return errors.New("-mixed-time must be positive")
	}
	ours, theirs, distro, err := resolveBinaries(oursPath, theirsPath, distroPath, distroSet)
	if err != nil {
		return err
	}
	if oursShim, err = resolveShim(oursShim, ours); err != nil {
		return fmt.Errorf("-shim: %w", err)
	}
	if theirsShim, err = resolveShim(theirsShim, theirs); err != nil {
		return fmt.Errorf("-theirs-shim: %w", err)
	}
	if distro != "" {
		if distroShim, err = resolveShim(distroShim, distro); err != nil {
			return fmt.Errorf("-distro-shim: %w", err)
		}
	}

	tmp, err := os.MkdirTemp("", "containerd-bench-")
	if err != nil {
		return fmt.Errorf("create temp dir: %w", err)
	}
	if tmp, err = filepath.EvalSymlinks(tmp); err != nil {
		return err
	}
	for _, p := range hostPaths {
		if tmp == p || strings.HasPrefix(tmp, p+"/") {
			os.Remove(tmp)
			return fmt.Errorf("temp dir %s is under %s, which belongs to the host's containerd: set TMPDIR elsewhere", tmp, p)
		}
	}
	b := &bench{
		opts:   opts,
		ours:   &flavor{name: "ours", label: "ours", path: ours, shim: oursShim},
		theirs: &flavor{name: "theirs", label: "theirs", path: theirs, containerd: true, shim: theirsShim},
		tmp:    tmp,
		live:   map[*daemon]bool{},
	}
	if distro != "" {
		b.distro = &flavor{name: "distro", label: "distro", path: distro, containerd: true, shim: distroShim}
	}
	defer func() {
		b.stopAll()
		if !opts.keep {
			os.RemoveAll(tmp)
		}
	}()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// A second signal then ends the bench at once; its daemons die with
		// it (Pdeathsig), only the temp dir stays.
		<-ctx.Done()
		stop()
	}()

	if err := b.header(ctx, os.Stdout); err != nil {
		return err
	}
	for _, w := range todo {
		t, err := w.run(ctx, b)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted during %s", w.name)
			}
			return fmt.Errorf("%s: %w", w.name, err)
		}
		printTable(os.Stdout, b.describe(w), w.name, t)
	}
	if opts.keep {
		fmt.Printf("\ndaemon directories kept in %s\n", tmp)
	}
	return nil
}

func usage() {
	out := flag.CommandLine.Output()
	fmt.Fprintf(out, "usage: containerd-bench -ours PATH [flags]\n\nworkloads:\n")
	for _, w := range workloads {
		fmt.Fprintf(out, "  %-10s %s\n", w.name, w.about)
	}
	fmt.Fprintf(out, "\nflags:\n")
	flag.PrintDefaults()
}

func selectWorkloads(only string) ([]*workload, error) {
	if only == "" {
		return workloads, nil
	}
	var names []string
	for _, w := range workloads {
		if w.name == only {
			return []*workload{w}, nil
		}
		names = append(names, w.name)
	}
	return nil, fmt.Errorf("no workload %q; there are %s", only, strings.Join(names, ", "))
}

// resolveBinaries checks the binaries and refuses to compare a binary
// with itself, which would make a meaningless table. distro is "" when
// the comparison leaves the distribution's containerd out: -distro ”, or
// no containerd found where none was named.
func resolveBinaries(ours, theirs, distro string, distroSet bool) (string, string, string, error) {
	if ours == "" {
		return "", "", "", errors.New("-ours is required")
	}
	ours, err := filepath.Abs(ours)
	if err != nil {
		return "", "", "", err
	}
	oi, err := os.Stat(ours)
	if err != nil {
		return "", "", "", fmt.Errorf("-ours: %w", err)
	}
	if theirs == "" {
		theirs = filepath.Join(filepath.Dir(ours), "containerd2", "containerd")
		if _, err := os.Stat(theirs); err != nil {
			return "", "", "", fmt.Errorf("no containerd 2.x at %s to compare with: `make test-deps` builds it (script/containerd2.sh), or name one with -theirs", theirs)
		}
	}
	if theirs, err = filepath.Abs(theirs); err != nil {
		return "", "", "", err
	}
	ti, err := os.Stat(theirs)
	if err != nil {
		return "", "", "", fmt.Errorf("-theirs: %w", err)
	}
	if os.SameFile(oi, ti) {
		return "", "", "", fmt.Errorf("-theirs %s is the same binary as -ours; name containerd 2.x with -theirs", theirs)
	}
	if !distroSet {
		distro = "/usr/bin/containerd"
		if _, err := os.Stat(distro); err != nil {
			if distro, err = exec.LookPath("containerd"); err != nil {
				fmt.Fprintln(os.Stderr, "containerd-bench: no /usr/bin/containerd nor containerd on PATH: comparing with containerd 2.x alone")
				return ours, theirs, "", nil
			}
		}
	}
	if distro == "" {
		return ours, theirs, "", nil
	}
	if distro, err = filepath.Abs(distro); err != nil {
		return "", "", "", err
	}
	di, err := os.Stat(distro)
	if err != nil {
		return "", "", "", fmt.Errorf("-distro: %w", err)
	}
	if os.SameFile(di, oi) || os.SameFile(di, ti) {
		if !distroSet {
			// containerd on PATH is ours after `make install`, say.
			fmt.Fprintf(os.Stderr, "containerd-bench: %s is -ours or -theirs: comparing with containerd 2.x alone (name 1.6 with -distro)\n", distro)
			return ours, theirs, "", nil
		}
		return "", "", "", fmt.Errorf("-distro %s is the same binary as -ours or -theirs", distro)
	}
	return ours, theirs, distro, nil
}

// shimName is the binary of runtime io.containerd.runc.v2.
const shimName = "containerd-shim-runc-v2"

// resolveShim returns the absolute path of shim, or of the shim beside
// daemon when shim is empty: each daemon is measured with its own shim.
func resolveShim(shim, daemon string) (string, error) {
	if shim == "" {
		shim = filepath.Join(filepath.Dir(daemon), shimName)
	}
	shim, err := filepath.Abs(shim)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(shim); err != nil {
		return "", err
	}
	return shim, nil
}

// flavors are the daemons the default driver measures: ours, containerd
// 2.x and, unless left out, the distribution's 1.6.
func (b *bench) flavors() []*flavor {
	if b.distro == nil {
		return []*flavor{b.ours, b.theirs}
	}
	return []*flavor{b.ours, b.theirs, b.distro}
}

// header prints the machine and the daemons, whose versions come from a
// first start of each, and names containerd's by their version in the
// tables; that start also brings every binary into the page cache before
// anything is timed.
func (b *bench) header(ctx context.Context, w io.Writer) error {
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s/%s, bench built with %s\n",
		runtime.NumCPU(), cpuModel(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	for _, f := range b.flavors() {
		d, err := b.start(ctx, f, "")
		if err != nil {
			return err
		}
		if err := d.stop(); err != nil {
			return err
		}
		if f != b.ours {
			f.label = versionLabel(d.version, f.label)
		}
		goVersion := "go version unknown"
		if bi, err := buildinfo.ReadFile(f.path); err == nil {
			goVersion = "built with " + bi.GoVersion
		}
		fmt.Fprintf(w, "%-8s %s: Version %q, %s; shim %s\n", f.label, f.path, d.version, goVersion, f.shim)
	}
	if b.distro != nil && b.distro.label == b.theirs.label {
		b.distro.label += "(distro)"
	}
	fmt.Fprintf(w, "every daemon runs with its CRI plugin disabled but in the cri workload; containerd's have their opt dir in the temp dir\n")
	fmt.Fprintf(w, "ours/X is ours/X for times and X/ours for rates: below 1 means ours is better; memory growth and error counts have no ratio\n")
	fmt.Fprintf(w, "workloads with a column per daemon measure each in turn, each round led by another; two-column ones name whom they compare with\n")
	return nil
}

// versionLabel is a column name for a daemon whose Version answered v
// ("2.4.2 <revision>", "v1.6.20~ds1 ..."): its release number, or
// fallback when v has none.
func versionLabel(v, fallback string) string {
	fields := strings.Fields(v)
	if len(fields) == 0 {
		return fallback
	}
	v = strings.TrimPrefix(fields[0], "v")
	end := strings.IndexFunc(v, func(r rune) bool { return r != '.' && (r < '0' || r > '9') })
	if end >= 0 {
		v = v[:end]
	}
	if strings.Trim(v, ".") == "" {
		return fallback
	}
	return v
}

// describe is a workload's heading, with the parameters that shaped it.
func (b *bench) describe(w *workload) string {
	s := w.name + ": " + w.about
	if w.params != nil {
		s += "; " + w.params(b.opts)
	}
	return s
}

// cpuModel is the first "model name" in /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
