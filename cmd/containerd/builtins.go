package main

// The plugins compiled into the daemon; each registers itself in init().
import (
	_ "github.com/llitfkitfk/containerd/content/local"
	_ "github.com/llitfkitfk/containerd/diff/walking"
	_ "github.com/llitfkitfk/containerd/events/exchange"
	_ "github.com/llitfkitfk/containerd/gc/scheduler"
	_ "github.com/llitfkitfk/containerd/metadata"
	_ "github.com/llitfkitfk/containerd/runtime/v2"
	_ "github.com/llitfkitfk/containerd/services/containers"
	_ "github.com/llitfkitfk/containerd/services/content"
	_ "github.com/llitfkitfk/containerd/services/diff"
	_ "github.com/llitfkitfk/containerd/services/events"
	_ "github.com/llitfkitfk/containerd/services/healthcheck"
	_ "github.com/llitfkitfk/containerd/services/images"
	_ "github.com/llitfkitfk/containerd/services/introspection"
	_ "github.com/llitfkitfk/containerd/services/leases"
	_ "github.com/llitfkitfk/containerd/services/namespaces"
	_ "github.com/llitfkitfk/containerd/services/snapshots"
	_ "github.com/llitfkitfk/containerd/services/streaming"
	_ "github.com/llitfkitfk/containerd/services/tasks"
	_ "github.com/llitfkitfk/containerd/services/transfer"
	_ "github.com/llitfkitfk/containerd/services/version"
	_ "github.com/llitfkitfk/containerd/snapshots/naive"
	_ "github.com/llitfkitfk/containerd/snapshots/overlay"
	_ "github.com/llitfkitfk/containerd/transfer/local"
)
