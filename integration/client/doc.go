// Package client drives the built daemon with containerd's own Go client:
// containerd's public content and snapshotter test suites, and the
// client's basic flows (version, namespaces, image import and unpack,
// containers, tasks, exec, events) on each snapshotter. It is a module of
// its own, as containerd keeps its client integration tests, so that the
// product never depends on containerd; it runs as root (`make test`).
package client
