package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"

	versionapi "github.com/llitfkitfk/containerd/api/services/version/v1"
)

const (
	// readyTimeout bounds how long a daemon may take to answer Version.
	readyTimeout = 30 * time.Second
	// stopTimeout is how long a daemon gets to exit after SIGTERM before
	// it is killed.
	stopTimeout = 10 * time.Second
	// pollInterval is how often the socket is tried during start-up; it
	// sets the resolution of the start-up times.
	pollInterval = time.Millisecond
	// logTail is how many lines of a failed daemon's log are shown.
	logTail = 30
	// maxSocketPath is what fits in sockaddr_un's sun_path.
	maxSocketPath = 107
)

// A flavor is one of the daemons under comparison.
type flavor struct {
	name string // "ours", "theirs" or "distro": its directories' prefix
	// label names it in tables: "ours", or containerd's version.
	label string
	path  string
	// containerd marks containerd's own daemons (2.x or 1.6), which need
	// their opt directory moved out of /opt.
	containerd bool
	// shim is the containerd-shim-runc-v2 the daemon runs containers
	// through, put first on its PATH; "" leaves PATH alone.
	shim string
}

// baseConfig is the config every daemon starts with: everything it writes
// lives under dir, but for its state directory, and nothing is read from
// /etc/containerd. Every daemon, ours and containerd's alike, runs with its
// CRI plugin disabled unless cri is set (the cri workload configures it):
// no other workload uses it, containerd's would read the host's CNI
// directories, and the daemons compared must run the same config.
func (f *flavor) baseConfig(dir, state string, cri bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version = 2\nroot = %q\nstate = %q\n", filepath.Join(dir, "root"), state)
	if !cri {
		b.WriteString("disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n")
	}
	fmt.Fprintf(&b, "\n[grpc]\n  address = %q\n", filepath.Join(dir, "containerd.sock"))
	fmt.Fprintf(&b, "\n[debug]\n  address = %q\n", filepath.Join(dir, "debug.sock"))
	if f.containerd {
		// The default is /opt/containerd.
		fmt.Fprintf(&b, "\n[plugins]\n  [plugins.%q]\n    path = %q\n", "io.containerd.internal.v1.opt", filepath.Join(dir, "opt"))
	}
	return b.String()
}

// A daemon is one running instance with a directory of its own.
type daemon struct {
	flavor       *flavor
	dir          string
	fsImage      string // the filesystem image mounted on dir, if any
	state        string // the daemon's state directory
	address      string // the gRPC socket
	debugAddress string // pprof and expvar over HTTP
	logPath      string
	// cri runs the daemon with its CRI plugin, which baseConfig leaves out
	// otherwise.
	cri bool

	// ready is the time from exec to the first answered Version call.
	ready time.Duration
	// version is what Version answered, "version revision".
	version string

	cmd     *exec.Cmd
	logFile *os.File
	exited  chan struct{} // closed once the process has been reaped
	waitErr error
	keep    bool // leave dir in place for a look afterwards
	stopped sync.Once
	stopErr error
}

// start runs a daemon of flavor f in a fresh directory under b's temp dir
// and returns once it answers Version. extra is TOML appended to the base
// config; since it follows tables, it may hold only tables.
func (b *bench) start(ctx context.Context, f *flavor, extra string) (*daemon, error) {
	dir, err := b.newDir(f.name)
	if err != nil {
		return nil, err
	}
	return b.launch(ctx, &daemon{flavor: f, dir: dir}, extra)
}

// startOnFreshFS is start with the daemon's directory on an ext4
// filesystem made for it in a sparse file, which stop unmounts and
// deletes.
func (b *bench) startOnFreshFS(ctx context.Context, f *flavor, extra string) (*daemon, error) {
	dir, err := b.newDir(f.name)
	if err != nil {
		return nil, err
	}
	d := &daemon{flavor: f, dir: dir, fsImage: dir + ".ext4"}
	if err := d.makeFS(ctx); err != nil {
		if ctx.Err() != nil {
			d.removeDir()
			return nil, ctx.Err()
		}
		// Without loop devices, say, the rounds share the temp dir's
		// filesystem: noisier, but still a comparison.
		b.noFreshFS.Do(func() {
			fmt.Fprintf(os.Stderr, "containerd-bench: no fresh filesystem for each round (%v); using %s\n", err, b.tmp)
		})
		d.removeDir()
		if err := os.Mkdir(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create daemon dir: %w", err)
		}
		d.fsImage = ""
	}
	return b.launch(ctx, d, extra)
}

// fsImageSize bounds a fresh filesystem; the file is sparse, so only what
// is written takes space.
const fsImageSize = 8 << 30

// makeFS creates d's filesystem and mounts it on d.dir. The inode tables
// and journal are initialised now rather than lazily, so that no kernel
// thread zeroes them while the workload runs.
func (d *daemon) makeFS(ctx context.Context) error {
	f, err := os.Create(d.fsImage)
	if err != nil {
		return fmt.Errorf("create filesystem image: %w", err)
	}
	err = f.Truncate(fsImageSize)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("size filesystem image: %w", err)
	}
	for _, args := range [][]string{
		{"mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", d.fsImage},
		{"mount", "-o", "loop", d.fsImage, d.dir},
	} {
		if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
			if out = bytes.TrimSpace(out); len(out) > 0 {
				err = fmt.Errorf("%w: %s", err, out)
			}
			return fmt.Errorf("%s: %w", strings.Join(args, " "), err)
		}
	}
	return os.Chmod(d.dir, 0o700)
}

// removeDir deletes what d left on disk: its directory, or its filesystem
// and the image behind it.
func (d *daemon) removeDir() error {
	if d.state != "" && !strings.HasPrefix(d.state, d.dir+string(filepath.Separator)) {
		if err := os.RemoveAll(d.state); err != nil {
			return err
		}
	}
	if d.fsImage == "" {
		return os.RemoveAll(d.dir)
	}
	// Unmounting detaches the loop device too, as mount -o loop sets it
	// to clear itself on last close.
	if err := syscall.Unmount(d.dir, 0); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("unmount %s: %w", d.dir, err)
	}
	if err := os.Remove(d.fsImage); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Remove(d.dir)
}

// launch writes d's config into d.dir and starts the daemon.
func (b *bench) launch(ctx context.Context, d *daemon, extra string) (_ *daemon, err error) {
	f, dir := d.flavor, d.dir
	d.address = filepath.Join(dir, "containerd.sock")
	d.debugAddress = filepath.Join(dir, "debug.sock")
	d.logPath = filepath.Join(dir, "daemon.log")
	// A state directory is on tmpfs wherever containerd is deployed
	// (/run/containerd), and bundles and shim files written there must
	// not reach a disk: the bench's own /run is its place.
	d.state = filepath.Join(dir, "state")
	if privateRun {
		d.state = filepath.Join("/run", "containerd-bench", filepath.Base(dir))
	}
	d.exited = make(chan struct{})
	d.keep = b.opts.keep
	// The ttrpc socket is the longest path a daemon binds.
	if n := len(d.address + ".ttrpc"); n > maxSocketPath {
		d.removeDir()
		return nil, fmt.Errorf("socket path %s.ttrpc is %d bytes, over the %d that unix sockets allow: set TMPDIR to a shorter directory", d.address, n, maxSocketPath)
	}
	config := filepath.Join(dir, "config.toml")
	text := f.baseConfig(dir, d.state, d.cri)
	if extra != "" {
		text += "\n" + extra
	}
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		d.removeDir()
		return nil, fmt.Errorf("write config for %s: %w", f.name, err)
	}
	if d.logFile, err = os.Create(d.logPath); err != nil {
		d.removeDir()
		return nil, fmt.Errorf("create log for %s: %w", f.name, err)
	}

	d.cmd = exec.Command(f.path, "--config", config)
	d.cmd.Dir = dir
	if f.shim != "" {
		bin := filepath.Join(dir, "shim-bin")
		if err := os.Mkdir(bin, 0o755); err != nil {
			d.removeDir()
			return nil, err
		}
		if err := os.Symlink(f.shim, filepath.Join(bin, shimName)); err != nil {
			d.removeDir()
			return nil, err
		}
		d.cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	d.cmd.Stdout = d.logFile
	d.cmd.Stderr = d.logFile
	d.cmd.SysProcAttr = &syscall.SysProcAttr{
		// Out of the terminal's process group, so that ^C reaches only the
		// bench, which then stops its daemons in order.
		Setpgid: true,
		// Should the bench die without cleaning up, its daemons die too.
		Pdeathsig: syscall.SIGKILL,
	}

	b.track(d)
	t0 := time.Now()
	if err := d.cmd.Start(); err != nil {
		d.logFile.Close()
		b.untrack(d)
		d.removeDir()
		return nil, fmt.Errorf("exec %s: %w", f.path, err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.exited)
	}()
	if err := d.waitReady(ctx, t0); err != nil {
		tail := d.tail()
		d.stop()
		return nil, fmt.Errorf("%s daemon (%s) did not become ready: %w\n--- end of its log ---\n%s", f.name, f.path, err, tail)
	}
	return d, nil
}

// waitReady polls the socket until Version answers. A plain dial goes
// first because it fails in microseconds and costs the starting daemon
// nothing, while a gRPC client would back off after a refused connection.
func (d *daemon) waitReady(ctx context.Context, t0 time.Time) error {
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	for {
		if c, err := net.DialTimeout("unix", d.address, 100*time.Millisecond); err == nil {
			c.Close()
			v, err := d.probe(ctx)
			if err == nil {
				d.ready = time.Since(t0)
				d.version = v
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		select {
		case <-d.exited:
			return fmt.Errorf("exited early: %v", d.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("no answer on %s within %v", d.address, readyTimeout)
		case <-time.After(pollInterval):
		}
	}
}

// probe makes one Version call on a connection of its own.
func (d *daemon) probe(ctx context.Context) (string, error) {
	conn, err := d.dial()
	if err != nil {
		return "", err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r, err := versionapi.NewVersionClient(conn).Version(ctx, &emptypb.Empty{})
	if err != nil {
		return "", fmt.Errorf("Version: %w", err)
	}
	return strings.TrimSpace(r.Version + " " + r.Revision), nil
}

// dial returns a gRPC client connection to the daemon's socket. It
// connects lazily, on the first call.
func (d *daemon) dial() (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient("unix://"+d.address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", d.address, err)
	}
	return conn, nil
}

// stop ends the daemon, SIGTERM first and SIGKILL after stopTimeout, and
// removes its directory. It may be called more than once.
func (d *daemon) stop() error {
	d.stopped.Do(func() {
		if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			d.stopErr = fmt.Errorf("signal %s daemon: %w", d.flavor.name, err)
		}
		select {
		case <-d.exited:
		case <-time.After(stopTimeout):
			// The whole group, in case the daemon started children.
			syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			<-d.exited
			d.stopErr = fmt.Errorf("%s daemon ignored SIGTERM for %v and was killed", d.flavor.name, stopTimeout)
		}
		d.logFile.Close()
		if d.keep {
			return
		}
		if err := d.removeDir(); err != nil && d.stopErr == nil {
			d.stopErr = fmt.Errorf("remove %s: %w", d.dir, err)
		}
	})
	return d.stopErr
}

// tail returns the last lines of the daemon's log.
func (d *daemon) tail() string {
	data, err := os.ReadFile(d.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > logTail {
		lines = lines[len(lines)-logTail:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// newDir makes a fresh directory for one daemon under the bench's temp dir.
func (b *bench) newDir(name string) (string, error) {
	b.mu.Lock()
	b.seq++
	n := b.seq
	b.mu.Unlock()
	dir := filepath.Join(b.tmp, name+"-"+strconv.Itoa(n))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("create daemon dir: %w", err)
	}
	return dir, nil
}

// track and untrack keep the set of daemons that stopAll must end.
func (b *bench) track(d *daemon) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.live[d] = true
}

func (b *bench) untrack(d *daemon) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.live, d)
}

// stopAll stops every daemon still running; it is the bench's last word on
// any path out, error and interrupt included.
func (b *bench) stopAll() {
	b.mu.Lock()
	live := make([]*daemon, 0, len(b.live))
	for d := range b.live {
		live = append(live, d)
	}
	b.mu.Unlock()
	for _, d := range live {
		if err := d.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "containerd-bench:", err)
		}
	}
}
