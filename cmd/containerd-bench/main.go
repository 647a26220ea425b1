// Command containerd-bench runs the same workloads against this daemon and
// against another containerd, normally the distribution's, and prints the
// two side by side.
//
//	go run ./cmd/containerd-bench -ours bin/containerd [-theirs /usr/bin/containerd]
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
	"text/tabwriter"
)

// options are the knobs the flags set.
type options struct {
	runs    int // start-ups per daemon
	rounds  int // measurements per daemon of the other workloads
	callers int // parallel callers
	calls   int // calls per caller
	only    string
	keep    bool
}

// bench is one comparison: the two daemons and the directory their
// instances live in.
type bench struct {
	opts         options
	ours, theirs *flavor
	tmp          string

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
	)
	flag.StringVar(&oursPath, "ours", "", "this project's containerd binary (required)")
	flag.StringVar(&theirsPath, "theirs", "", "the containerd to compare with (default: containerd on PATH)")
	flag.StringVar(&oursShim, "shim", "", "the shim ours runs containers through (default: "+shimName+" beside -ours)")
	flag.StringVar(&theirsShim, "theirs-shim", "", "the shim theirs runs containers through (default: "+shimName+" beside -theirs)")
	flag.IntVar(&opts.runs, "runs", 10, "start-ups per daemon in the startup workload")
	flag.IntVar(&opts.rounds, "rounds", 3, "rounds per daemon of the other workloads, alternating; each metric is the median of its rounds")
	flag.IntVar(&opts.callers, "callers", 64, "parallel callers")
	flag.IntVar(&opts.calls, "calls", 500, "calls per caller per round")
	flag.StringVar(&opts.only, "only", "", "run only the named workload")
	flag.BoolVar(&opts.keep, "keep", false, "keep each daemon's directory (config, log) instead of removing it")
	flag.Usage = usage
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}

	todo, err := selectWorkloads(opts.only)
	if err != nil {
		return err
	}
	if opts.runs < 1 || opts.rounds < 1 || opts.callers < 1 || opts.calls < 1 {
		return errors.New("-runs, -rounds, -callers and -calls must be at least 1")
	}
	ours, theirs, err := resolveBinaries(oursPath, theirsPath)
	if err != nil {
		return err
	}
	if oursShim, err = resolveShim(oursShim, ours); err != nil {
		return fmt.Errorf("-shim: %w", err)
	}
	if theirsShim, err = resolveShim(theirsShim, theirs); err != nil {
		return fmt.Errorf("-theirs-shim: %w", err)
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
		ours:   &flavor{name: "ours", path: ours, shim: oursShim},
		theirs: &flavor{name: "theirs", path: theirs, distro: true, shim: theirsShim},
		tmp:    tmp,
		live:   map[*daemon]bool{},
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
		rows, err := w.run(ctx, b)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted during %s", w.name)
			}
			return fmt.Errorf("%s: %w", w.name, err)
		}
		printTable(os.Stdout, b.describe(w), w.name, rows)
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

// resolveBinaries checks both binaries and refuses to compare a binary with
// itself, which would make a meaningless table.
func resolveBinaries(ours, theirs string) (string, string, error) {
	if ours == "" {
		return "", "", errors.New("-ours is required")
	}
	ours, err := filepath.Abs(ours)
	if err != nil {
		return "", "", err
	}
	if theirs == "" {
		if theirs, err = exec.LookPath("containerd"); err != nil {
			return "", "", fmt.Errorf("no containerd on PATH to compare with; give -theirs: %w", err)
		}
	}
	if theirs, err = filepath.Abs(theirs); err != nil {
		return "", "", err
	}
	oi, err := os.Stat(ours)
	if err != nil {
		return "", "", fmt.Errorf("-ours: %w", err)
	}
	ti, err := os.Stat(theirs)
	if err != nil {
		return "", "", fmt.Errorf("-theirs: %w", err)
	}
	if os.SameFile(oi, ti) {
		return "", "", fmt.Errorf("-theirs %s is the same binary as -ours; name the other containerd with -theirs", theirs)
	}
	return ours, theirs, nil
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

// header prints the machine and the two daemons, whose versions come from
// a first start of each; that start also brings both binaries into the
// page cache before anything is timed.
func (b *bench) header(ctx context.Context, w io.Writer) error {
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s/%s, bench built with %s\n",
		runtime.NumCPU(), cpuModel(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	for _, f := range []*flavor{b.ours, b.theirs} {
		d, err := b.start(ctx, f, "")
		if err != nil {
			return err
		}
		if err := d.stop(); err != nil {
			return err
		}
		goVersion := "go version unknown"
		if bi, err := buildinfo.ReadFile(f.path); err == nil {
			goVersion = "built with " + bi.GoVersion
		}
		fmt.Fprintf(w, "%-6s  %s: Version %q, %s; shim %s\n", f.name, f.path, d.version, goVersion, f.shim)
	}
	fmt.Fprintf(w, "theirs runs with its CRI plugin disabled (it needs CNI, and ours has no CRI) and its opt dir in the temp dir\n")
	fmt.Fprintf(w, "ratio is ours/theirs for times and theirs/ours for rates: below 1 means ours is better\n")
	return nil
}

// describe is a workload's heading, with the parameters that shaped it.
func (b *bench) describe(w *workload) string {
	s := w.name + ": " + w.about
	if w.params != nil {
		s += "; " + w.params(b.opts)
	}
	return s
}

// printTable prints one workload's rows, aligned.
func printTable(out io.Writer, heading, name string, rows []row) {
	fmt.Fprintf(out, "\n%s\n", heading)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\tmetric\tours\ttheirs\tratio")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, r.metric,
			r.unit.format(r.ours), r.unit.format(r.theirs), formatRatio(ratio(r.unit, r.ours, r.theirs)))
	}
	tw.Flush()
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
