package server

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/plugin"
)

// Config is the daemon's configuration: containerd's version 2 format, so a
// file written for containerd 1.6 configures this daemon too.
type Config struct {
	// Version is the config format; 2 is current, 1 (or none) is the
	// legacy format whose plugin sections are keyed by plugin id alone.
	Version int `toml:"version"`
	// Root is where the daemon and its plugins keep persistent data.
	Root string `toml:"root"`
	// State is where they keep data that does not outlive a reboot.
	State string `toml:"state"`
	// TempDir is the daemon's temporary directory, for plugins that need one.
	TempDir string `toml:"temp,omitempty"`
	// PluginDir is accepted for compatibility; Go plugins are not loaded.
	PluginDir string `toml:"plugin_dir,omitempty"`

	GRPC    GRPCConfig    `toml:"grpc"`
	TTRPC   TTRPCConfig   `toml:"ttrpc"`
	Debug   Debug         `toml:"debug"`
	Metrics MetricsConfig `toml:"metrics"`
	Cgroup  CgroupConfig  `toml:"cgroup"`

	// DisabledPlugins are plugin URIs ("<type>.<id>") not to load.
	DisabledPlugins []string `toml:"disabled_plugins"`
	// RequiredPlugins are plugin URIs whose failure stops start-up.
	RequiredPlugins []string `toml:"required_plugins"`
	// OOMScore is the daemon's own oom_score_adj; 0 leaves it alone.
	OOMScore int `toml:"oom_score"`
	// Imports are further config files (globs allowed) merged into this one.
	Imports []string `toml:"imports"`

	// Timeouts and the sections below are accepted so that containerd's own
	// files load; this daemon does not act on them yet.
	Timeouts         map[string]string          `toml:"timeouts,omitempty"`
	ProxyPlugins     map[string]ProxyPlugin     `toml:"proxy_plugins,omitempty"`
	StreamProcessors map[string]StreamProcessor `toml:"stream_processors,omitempty"`

	// Plugins holds each plugin's section undecoded until the plugin's own
	// config struct is known.
	Plugins map[string]toml.Primitive `toml:"plugins,omitempty"`

	// sections remembers, per plugin key, which file's decoder can decode it.
	sections map[string]section
	files    []*toml.MetaData
}

type section struct {
	md   *toml.MetaData
	file string
}

// GRPCConfig configures the gRPC listeners.
type GRPCConfig struct {
	Address        string `toml:"address"`
	TCPAddress     string `toml:"tcp_address"`
	TCPTLSCA       string `toml:"tcp_tls_ca"`
	TCPTLSCert     string `toml:"tcp_tls_cert"`
	TCPTLSKey      string `toml:"tcp_tls_key"`
	UID            int    `toml:"uid"`
	GID            int    `toml:"gid"`
	MaxRecvMsgSize int    `toml:"max_recv_message_size"`
	MaxSendMsgSize int    `toml:"max_send_message_size"`
}

// TTRPCConfig configures the ttrpc listener shims talk to.
type TTRPCConfig struct {
	Address string `toml:"address"`
	UID     int    `toml:"uid"`
	GID     int    `toml:"gid"`
}

// Debug configures the debug socket and logging.
type Debug struct {
	Address string `toml:"address"`
	UID     int    `toml:"uid"`
	GID     int    `toml:"gid"`
	Level   string `toml:"level"`
	// Format is "text" or "json".
	Format string `toml:"format"`
}

// MetricsConfig configures the Prometheus listener.
type MetricsConfig struct {
	Address       string `toml:"address"`
	GRPCHistogram bool   `toml:"grpc_histogram"`
}

// CgroupConfig names the cgroup the daemon places itself in.
type CgroupConfig struct {
	Path string `toml:"path"`
}

// ProxyPlugin is a plugin served by another process (accepted, not used).
type ProxyPlugin struct {
	Type     string `toml:"type"`
	Address  string `toml:"address"`
	Platform string `toml:"platform"`
}

// StreamProcessor is a layer media type converter (accepted, not used).
type StreamProcessor struct {
	Accepts []string `toml:"accepts"`
	Returns string   `toml:"returns"`
	Path    string   `toml:"path"`
	Args    []string `toml:"args"`
	Env     []string `toml:"env"`
}

// Defaults of containerd, which clients and operators expect.
const (
	DefaultConfigPath = "/etc/containerd/config.toml"
	DefaultRootDir    = "/var/lib/containerd"
	DefaultStateDir   = "/run/containerd"
	DefaultAddress    = "/run/containerd/containerd.sock"
	// DefaultMaxRecvMsgSize and DefaultMaxSendMsgSize are 16 MiB, as
	// containerd's: large enough for a container spec with many mounts.
	DefaultMaxRecvMsgSize = 16 << 20
	DefaultMaxSendMsgSize = 16 << 20
)

// DefaultConfig returns the config a daemon runs with when nothing is set.
// As in containerd 1.6 and 2.x, it has no debug listener: a fixed default
// debug socket would keep a second daemon from starting even on a root,
// state and socket of its own.
func DefaultConfig() *Config {
	return &Config{
		Version: 2,
		Root:    DefaultRootDir,
		State:   DefaultStateDir,
		GRPC: GRPCConfig{
			Address:        DefaultAddress,
			MaxRecvMsgSize: DefaultMaxRecvMsgSize,
			MaxSendMsgSize: DefaultMaxSendMsgSize,
		},
		Debug:           Debug{Level: "info", Format: "text"},
		DisabledPlugins: []string{},
		RequiredPlugins: []string{},
		Imports:         []string{},
		Plugins:         map[string]toml.Primitive{},
	}
}

// LoadConfig decodes the file at path, and the files it imports, onto c.
// Errors name the file and, for syntax and type errors, the line and key.
func LoadConfig(path string, c *Config) error {
	if c == nil {
		return fmt.Errorf("config must not be nil: %w", errdefs.ErrInvalidArgument)
	}
	seen := map[string]bool{}
	return c.load(path, seen)
}

func (c *Config) load(path string, seen map[string]bool) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if seen[abs] {
		return nil // a file imported twice, or in a cycle, counts once
	}
	seen[abs] = true

	b, err := os.ReadFile(abs)
	if err != nil {
		return fmt.Errorf("failed to load config: %w", err)
	}
	var file Config
	md, err := toml.Decode(string(b), &file)
	if err != nil {
		return fmt.Errorf("%s: %w", abs, describeTOMLError(err))
	}
	if md.IsDefined("version") {
		switch file.Version {
		case 1, 2:
		default:
			return fmt.Errorf("%s: unsupported config version %d (this daemon reads versions 1 and 2): %w",
				abs, file.Version, errdefs.ErrInvalidArgument)
		}
	} else {
		file.Version = 1 // as containerd: a file that says nothing is version 1
	}
	if err := file.validate(); err != nil {
		return fmt.Errorf("%s: %w", abs, err)
	}
	c.merge(&file, &md, abs)
	c.files = append(c.files, &md)

	imports, err := resolveImports(abs, file.Imports)
	if err != nil {
		return err
	}
	for _, imp := range imports {
		if err := c.load(imp, seen); err != nil {
			return fmt.Errorf("imported from %s: %w", abs, err)
		}
	}
	return nil
}

// describeTOMLError keeps the line and key the toml package reports.
func describeTOMLError(err error) error {
	var perr toml.ParseError
	if errors.As(err, &perr) {
		key := ""
		if perr.LastKey != "" {
			key = fmt.Sprintf(" (key %q)", perr.LastKey)
		}
		return fmt.Errorf("line %d, column %d%s: %s: %w",
			perr.Position.Line, perr.Position.Col, key, perr.Message, errdefs.ErrInvalidArgument)
	}
	return fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
}

func (c *Config) validate() error {
	if c.OOMScore < -1000 || c.OOMScore > 1000 {
		return fmt.Errorf("key \"oom_score\": %d is outside [-1000, 1000]: %w", c.OOMScore, errdefs.ErrInvalidArgument)
	}
	if c.GRPC.MaxRecvMsgSize < 0 || c.GRPC.MaxSendMsgSize < 0 {
		return fmt.Errorf("key \"grpc.max_*_message_size\" must not be negative: %w", errdefs.ErrInvalidArgument)
	}
	switch c.Debug.Format {
	case "", "text", "json":
	default:
		return fmt.Errorf("key \"debug.format\": %q is neither \"text\" nor \"json\": %w", c.Debug.Format, errdefs.ErrInvalidArgument)
	}
	return nil
}

// resolveImports expands the imports of the file at from: relative paths are
// taken from its directory, globs expanded in sorted order.
func resolveImports(from string, imports []string) ([]string, error) {
	var out []string
	for _, imp := range imports {
		if !filepath.IsAbs(imp) {
			imp = filepath.Join(filepath.Dir(from), imp)
		}
		if strings.ContainsAny(imp, "*?[") {
			matches, err := filepath.Glob(imp)
			if err != nil {
				return nil, fmt.Errorf("%s: import %q: %w", from, imp, err)
			}
			sort.Strings(matches)
			out = append(out, matches...)
			continue
		}
		out = append(out, imp)
	}
	return out, nil
}

// merge lays file over c: what file sets wins; lists of plugins add up; a
// plugin section replaces the same plugin's section from earlier files.
func (c *Config) merge(file *Config, md *toml.MetaData, path string) {
	set := func(key string) bool { return md.IsDefined(strings.Split(key, ".")...) }
	if set("version") {
		c.Version = file.Version
	}
	for key, pair := range map[string][2]*string{
		"root": {&c.Root, &file.Root}, "state": {&c.State, &file.State},
		"temp": {&c.TempDir, &file.TempDir}, "plugin_dir": {&c.PluginDir, &file.PluginDir},
		"grpc.address": {&c.GRPC.Address, &file.GRPC.Address}, "grpc.tcp_address": {&c.GRPC.TCPAddress, &file.GRPC.TCPAddress},
		"grpc.tcp_tls_ca": {&c.GRPC.TCPTLSCA, &file.GRPC.TCPTLSCA}, "grpc.tcp_tls_cert": {&c.GRPC.TCPTLSCert, &file.GRPC.TCPTLSCert},
		"grpc.tcp_tls_key": {&c.GRPC.TCPTLSKey, &file.GRPC.TCPTLSKey}, "ttrpc.address": {&c.TTRPC.Address, &file.TTRPC.Address},
		"debug.address": {&c.Debug.Address, &file.Debug.Address}, "debug.level": {&c.Debug.Level, &file.Debug.Level},
		"debug.format": {&c.Debug.Format, &file.Debug.Format}, "metrics.address": {&c.Metrics.Address, &file.Metrics.Address},
		"cgroup.path": {&c.Cgroup.Path, &file.Cgroup.Path},
	} {
		if set(key) {
			*pair[0] = *pair[1]
		}
	}
	for key, pair := range map[string][2]*int{
		"grpc.uid": {&c.GRPC.UID, &file.GRPC.UID}, "grpc.gid": {&c.GRPC.GID, &file.GRPC.GID},
		"grpc.max_recv_message_size": {&c.GRPC.MaxRecvMsgSize, &file.GRPC.MaxRecvMsgSize},
		"grpc.max_send_message_size": {&c.GRPC.MaxSendMsgSize, &file.GRPC.MaxSendMsgSize},
		"ttrpc.uid":                  {&c.TTRPC.UID, &file.TTRPC.UID}, "ttrpc.gid": {&c.TTRPC.GID, &file.TTRPC.GID},
		"debug.uid": {&c.Debug.UID, &file.Debug.UID}, "debug.gid": {&c.Debug.GID, &file.Debug.GID},
		"oom_score": {&c.OOMScore, &file.OOMScore},
	} {
		if set(key) {
			*pair[0] = *pair[1]
		}
	}
	if set("metrics.grpc_histogram") {
		c.Metrics.GRPCHistogram = file.Metrics.GRPCHistogram
	}
	c.DisabledPlugins = appendNew(c.DisabledPlugins, file.DisabledPlugins...)
	c.RequiredPlugins = appendNew(c.RequiredPlugins, file.RequiredPlugins...)
	c.Imports = appendNew(c.Imports, file.Imports...)
	c.Timeouts = mergeMap(c.Timeouts, file.Timeouts)
	c.ProxyPlugins = mergeMap(c.ProxyPlugins, file.ProxyPlugins)
	c.StreamProcessors = mergeMap(c.StreamProcessors, file.StreamProcessors)

	if c.Plugins == nil {
		c.Plugins = map[string]toml.Primitive{}
	}
	if c.sections == nil {
		c.sections = map[string]section{}
	}
	for key, prim := range file.Plugins {
		c.Plugins[key] = prim
		c.sections[key] = section{md: md, file: path}
	}
}

func appendNew(to []string, from ...string) []string {
	for _, s := range from {
		found := false
		for _, t := range to {
			if s == t {
				found = true
				break
			}
		}
		if !found {
			to = append(to, s)
		}
	}
	return to
}

func mergeMap[V any](to, from map[string]V) map[string]V {
	if len(from) == 0 {
		return to
	}
	if to == nil {
		to = map[string]V{}
	}
	for k, v := range from {
		to[k] = v
	}
	return to
}

// sectionKey returns the key of r's section in this config, if it has one:
// the URI in version 2, the bare id in version 1 files.
func (c *Config) sectionKey(r *plugin.Registration) (string, bool) {
	if _, ok := c.Plugins[r.URI()]; ok {
		return r.URI(), true
	}
	if _, ok := c.Plugins[r.ID]; ok && c.Version == 1 {
		return r.ID, true
	}
	return "", false
}

// Decode decodes r's section, if any, onto r.Config (which holds the
// plugin's defaults) and returns it.
func (c *Config) Decode(r *plugin.Registration) (interface{}, error) {
	if r.Config == nil {
		return nil, nil
	}
	key, ok := c.sectionKey(r)
	if !ok {
		return r.Config, nil
	}
	s := c.sections[key]
	if s.md == nil {
		return r.Config, nil
	}
	if err := s.md.PrimitiveDecode(c.Plugins[key], r.Config); err != nil {
		return nil, fmt.Errorf("%s: [plugins.%q]: %w", s.file, key, describeTOMLError(err))
	}
	return r.Config, nil
}

// Unknown lists, for the log, what no part of the daemon read: sections
// for plugins this daemon does not have, and misspelt keys. It is
// meaningful once every plugin's section has been decoded.
func (c *Config) Unknown(known func(key string) bool) []string {
	var out []string
	for key := range c.Plugins {
		if !known(key) {
			out = append(out, fmt.Sprintf("plugins.%q (no such plugin)", key))
		}
	}
	for _, md := range c.files {
		for _, key := range md.Undecoded() {
			if len(key) >= 2 && key[0] == "plugins" && !known(key[1]) {
				continue // reported above, once for the whole section
			}
			out = append(out, key.String())
		}
	}
	sort.Strings(out)
	return out
}

// Encode writes c as TOML, with every registered plugin's section showing
// its effective config, so that the output loads back to the same config.
func (c *Config) Encode(w io.Writer) error {
	// The undecoded sections give way to the decoded ones.
	cp := *c
	cp.Plugins = nil
	out := struct {
		*Config
		Plugins map[string]interface{} `toml:"plugins"`
	}{Config: &cp, Plugins: map[string]interface{}{}}
	for _, r := range plugin.Registrations() {
		cfg, err := c.Decode(r)
		if err != nil {
			return err
		}
		if cfg != nil {
			out.Plugins[r.URI()] = cfg
		}
	}
	return toml.NewEncoder(w).Encode(out)
}
