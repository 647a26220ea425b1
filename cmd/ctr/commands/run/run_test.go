package run

import (
	gocontext "context"
	"flag"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/urfave/cli"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/llitfkitfk/containerd/api/types/runc/options"
	"github.com/llitfkitfk/containerd/cmd/ctr/commands"
	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/namespaces"
	"github.com/llitfkitfk/containerd/oci"
)

func TestParseMountFlag(t *testing.T) {
	for in, want := range map[string]specs.Mount{
		"type=bind,src=/tmp,dst=/host,options=rbind:ro": {Type: "bind", Source: "/tmp", Destination: "/host", Options: []string{"rbind", "ro"}},
		"type=tmpfs,source=tmpfs,destination=/t":        {Type: "tmpfs", Source: "tmpfs", Destination: "/t"},
		`type=bind,"src=/a,b",dst=/c`:                   {Type: "bind", Source: "/a,b", Destination: "/c"},
	} {
		got, err := parseMountFlag(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseMountFlag(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"type=bind,src=/a":               "no destination",
		"type=bind,src=/a,dst=/b,mode=1": `mount option "mode" not supported`,
		"bind,dst=/b":                    "expected key=val",
		`type="bind`:                     "mount",
	} {
		if _, err := parseMountFlag(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("parseMountFlag(%q): %v, want an error saying %q", in, err, msg)
		}
	}
}

// runContext parses args as `ctr run`'s and returns the context its
// action would get.
func runContext(t *testing.T, args ...string) *cli.Context {
	t.Helper()
	set := flag.NewFlagSet("run", flag.ContinueOnError)
	for _, f := range Command.Flags {
		f.Apply(set)
	}
	if err := set.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cli.NewContext(cli.NewApp(), set, nil)
}

func TestCreateArgs(t *testing.T) {
	for _, c := range []struct {
		args     []string
		id, ref  string
		cmd      []string
		errorSay string
	}{
		{args: []string{"img", "c1"}, id: "c1", ref: "img"},
		{args: []string{"img", "c1", "sh", "-c", "exit 3"}, id: "c1", ref: "img", cmd: []string{"sh", "-c", "exit 3"}},
		{args: []string{"--rm", "img", "c1", "--", "sh", "-c", "x"}, id: "c1", ref: "img", cmd: []string{"sh", "-c", "x"}},
		{args: []string{"--config", "spec.json", "c1"}, id: "c1"},
		{args: []string{"--config", "spec.json", "c1", "x"}, errorSay: "only container id"},
		{args: []string{}, errorSay: "image ref must be provided"},
		{args: []string{"img"}, errorSay: "container id must be provided"},
	} {
		id, ref, cmd, err := createArgs(runContext(t, c.args...))
		if c.errorSay != "" {
			if err == nil || !strings.Contains(err.Error(), c.errorSay) {
				t.Errorf("%q: %v, want an error saying %q", c.args, err, c.errorSay)
			}
			continue
		}
		if err != nil || id != c.id || ref != c.ref || !reflect.DeepEqual(cmd, c.cmd) {
			t.Errorf("%q: id %q ref %q cmd %q, %v", c.args, id, ref, cmd, err)
		}
	}
}

func TestRuntimeOptions(t *testing.T) {
	o, err := RuntimeOptions(runContext(t))
	if err != nil || o != nil {
		t.Fatalf("no runc flags: %v, %v; want no options", o, err)
	}
	o, err = RuntimeOptions(runContext(t, "--runc-binary", "crun", "--runc-root", "/r", "--runc-systemd-cgroup", "--cgroup", "a:b:c"))
	want := &options.Options{BinaryName: "crun", Root: "/r", SystemdCgroup: true}
	if err != nil || o.(*options.Options).String() != want.String() {
		t.Fatalf("runc flags: %v, %v; want %v", o, err, want)
	}
	if _, err := RuntimeOptions(runContext(t, "--runc-systemd-cgroup")); err == nil || !strings.Contains(err.Error(), "--cgroup") {
		t.Errorf("systemd cgroup without --cgroup: %v", err)
	}
	if _, err := RuntimeOptions(runContext(t, "--runtime", "io.containerd.other.v1", "--runc-binary", "crun")); err == nil {
		t.Error("runc flags with another runtime accepted")
	}
	if o, err := RuntimeOptions(runContext(t, "--runtime", "io.containerd.other.v1")); err != nil || o != nil {
		t.Errorf("other runtime: %v, %v", o, err)
	}
	// The config path of another runtime, as containerd's
	// runtimeoptions.v1.Options encodes it.
	o, err = RuntimeOptions(runContext(t, "--runtime", "io.containerd.other.v1", "--runtime-config-path", "/etc/r.toml"))
	if a, ok := o.(*anypb.Any); err != nil || !ok || a.GetTypeUrl() != "runtimeoptions.v1.Options" || string(a.GetValue()) != "\x12\x0b/etc/r.toml" {
		t.Errorf("runtime config path: %v, %v", o, err)
	}
}

func TestLabelAndAnnotationArgs(t *testing.T) {
	if got := commands.LabelArgs([]string{"a=b", "c", "d=e=f"}); !reflect.DeepEqual(got, map[string]string{"a": "b", "c": "true", "d": "e=f"}) {
		t.Errorf("labelArgs: %v", got)
	}
	if _, err := annotationArgs([]string{"a"}); err == nil {
		t.Error("annotation without a value accepted")
	}
	if got, err := annotationArgs([]string{"io.x=1"}); err != nil || got["io.x"] != "1" {
		t.Errorf("annotationArgs: %v, %v", got, err)
	}
}

func TestValidNamespace(t *testing.T) {
	for _, ns := range []string{"pid", "network", "uts", "mount", "user", "ipc", "cgroup"} {
		if !validNamespace(ns) {
			t.Errorf("%s refused", ns)
		}
	}
	for _, ns := range []string{"", "net", "time2", "PID"} {
		if validNamespace(ns) {
			t.Errorf("%q accepted", ns)
		}
	}
}

// specOf is the spec the flags of args make (no image).
func specOf(t *testing.T, cmd []string, args ...string) (*oci.Spec, error) {
	t.Helper()
	context := runContext(t, args...)
	opts, err := flagSpecOpts(context, cmd, commands.LabelArgs(context.StringSlice("label")))
	if err != nil {
		return nil, err
	}
	ctx := namespaces.WithNamespace(gocontext.Background(), "ns")
	return oci.GenerateSpec(ctx, nil, &containers.Container{ID: "c1"}, opts...)
}

func TestFlagSpecOpts(t *testing.T) {
	s, err := specOf(t, []string{"sh", "-c", "x"},
		"--env", "A=1", "--env", "B=2", "--mount", "type=bind,src=/tmp,dst=/host,options=rbind:ro",
		"--read-only", "--cwd", "/w", "--tty", "--hostname", "h1", "--memory-limit", "33554432",
		"--cpus", "1.5", "--with-ns", "network:/proc/1/ns/net", "--label", "l=v", "--annotation", "a=b",
		"--cap-add", "CAP_SYS_ADMIN", "--cap-drop", "CAP_CHOWN", "--cgroup", "/g1", "--allow-new-privs",
		"--rlimit-nofile", "100:200", "--cpuset-cpus", "0", "--rootfs-propagation", "rslave")
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Join(s.Process.Env, " ")
	if !strings.Contains(env, "A=1") || !strings.Contains(env, "B=2") {
		t.Errorf("env %q", env)
	}
	var bind *specs.Mount
	for i, m := range s.Mounts {
		if m.Destination == "/host" {
			bind = &s.Mounts[i]
		}
	}
	if bind == nil || bind.Source != "/tmp" || strings.Join(bind.Options, ":") != "rbind:ro" {
		t.Errorf("mounts %+v", s.Mounts)
	}
	if !s.Root.Readonly || s.Process.Cwd != "/w" || !s.Process.Terminal || s.Hostname != "h1" ||
		strings.Join(s.Process.Args, " ") != "sh -c x" || s.Process.NoNewPrivileges {
		t.Errorf("process %+v, root %+v, hostname %q", s.Process, s.Root, s.Hostname)
	}
	r := s.Linux.Resources
	if r.Memory == nil || *r.Memory.Limit != 33554432 || r.CPU == nil || *r.CPU.Quota != 150000 || *r.CPU.Period != 100000 {
		t.Errorf("resources %+v", r)
	}
	if s.Linux.CgroupsPath != "/g1" || s.Linux.RootfsPropagation != "rslave" || r.CPU.Cpus != "0" {
		t.Errorf("linux %+v", s.Linux)
	}
	var nofile *specs.POSIXRlimit
	for i, rl := range s.Process.Rlimits {
		if rl.Type == "RLIMIT_NOFILE" {
			nofile = &s.Process.Rlimits[i]
		}
	}
	if nofile == nil || nofile.Soft != 100 || nofile.Hard != 200 {
		t.Errorf("rlimits %+v", s.Process.Rlimits)
	}
	var netns string
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			netns = ns.Path
		}
	}
	if netns != "/proc/1/ns/net" {
		t.Errorf("namespaces %+v", s.Linux.Namespaces)
	}
	// The labels are annotations too, as containerd's ctr makes them.
	if s.Annotations["a"] != "b" || s.Annotations["l"] != "v" {
		t.Errorf("annotations %v", s.Annotations)
	}
	caps := strings.Join(s.Process.Capabilities.Bounding, " ")
	if !strings.Contains(caps, "CAP_SYS_ADMIN") || strings.Contains(caps, "CAP_CHOWN") {
		t.Errorf("capabilities %q", caps)
	}

	s, err = specOf(t, nil, "--net-host")
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			t.Errorf("--net-host keeps a network namespace: %+v", ns)
		}
	}
	if !strings.Contains(strings.Join(s.Process.Env, " "), "HOSTNAME=") {
		t.Errorf("--net-host env %q", s.Process.Env)
	}
}

func TestFlagSpecOptsRefused(t *testing.T) {
	for _, c := range []struct {
		args []string
		say  string
	}{
		{[]string{"--mount", "type=bind,src=/a"}, "no destination"},
		{[]string{"--with-ns", "network"}, "nstype:path"},
		{[]string{"--with-ns", "net:/x"}, "not valid: net"},
		{[]string{"--cap-add", "SYS_ADMIN"}, "CAP_"},
		{[]string{"--cpus", "1", "--cpu-quota", "5000"}, "separately"},
		{[]string{"--annotation", "novalue"}, "novalue"},
		{[]string{"--privileged-without-host-devices"}, "without 'privileged'"},
		{[]string{"--rlimit-nofile", "10:x"}, "rlimit-nofile"},
		{[]string{"--rlimit-nofile", "20:10"}, "soft limit above"},
	} {
		if _, err := specOf(t, nil, c.args...); err == nil || !strings.Contains(err.Error(), c.say) {
			t.Errorf("%q: %v, want an error saying %q", c.args, err, c.say)
		}
	}
}
