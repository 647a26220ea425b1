package nri

import (
	"fmt"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
)

// Config is the [plugins."io.containerd.nri.v1.nri"] section, with
// containerd's keys.
type Config struct {
	// Disable turns NRI off: no socket, no plugins, no events.
	Disable bool `toml:"disable"`
	// SocketPath is where external plugins connect.
	SocketPath string `toml:"socket_path"`
	// PluginPath holds plugins the daemon starts itself; a missing
	// directory means none.
	PluginPath string `toml:"plugin_path"`
	// PluginConfigPath holds the configuration of those plugins.
	PluginConfigPath string `toml:"plugin_config_path"`
	// PluginRegistrationTimeout is how long a plugin has to register
	// after it connects or is started (a Go duration, "5s").
	PluginRegistrationTimeout string `toml:"plugin_registration_timeout"`
	// PluginRequestTimeout is how long a plugin has to answer an event.
	PluginRequestTimeout string `toml:"plugin_request_timeout"`
	// DisableConnections refuses external plugins: only those in
	// PluginPath run.
	DisableConnections bool `toml:"disable_connections"`
}

// DefaultConfig is containerd's default: enabled, on
// /var/run/nri/nri.sock.
func DefaultConfig() *Config {
	return &Config{
		SocketPath:                adaptation.DefaultSocketPath,
		PluginPath:                adaptation.DefaultPluginPath,
		PluginConfigPath:          adaptation.DefaultPluginConfigPath,
		PluginRegistrationTimeout: "5s",
		PluginRequestTimeout:      "2s",
	}
}

// Validate reports a configuration that cannot work, naming the key.
func (c Config) Validate() error {
	if c.Disable {
		return nil
	}
	if c.SocketPath == "" && !c.DisableConnections {
		return fmt.Errorf("NRI: socket_path is empty (set disable_connections to refuse external plugins)")
	}
	for key, v := range map[string]string{
		"plugin_registration_timeout": c.PluginRegistrationTimeout,
		"plugin_request_timeout":      c.PluginRequestTimeout,
	} {
		if v == "" {
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("NRI: %s = %q: %w", key, v, err)
		}
		if d < 0 {
			return fmt.Errorf("NRI: %s = %q is negative", key, v)
		}
	}
	return nil
}

func (c Config) registrationTimeout() time.Duration {
	d, _ := time.ParseDuration(c.PluginRegistrationTimeout)
	return d
}

func (c Config) requestTimeout() time.Duration {
	d, _ := time.ParseDuration(c.PluginRequestTimeout)
	return d
}

func (c Config) options() []adaptation.Option {
	opts := []adaptation.Option{
		adaptation.WithPluginPath(c.PluginPath),
		adaptation.WithPluginConfigPath(c.PluginConfigPath),
	}
	if c.DisableConnections {
		opts = append(opts, adaptation.WithDisabledExternalConnections())
	} else {
		opts = append(opts, adaptation.WithSocketPath(c.SocketPath))
	}
	return opts
}
