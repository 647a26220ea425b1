// Command containerd-shim-runc-v2 is the runtime-v2 shim for runc: the
// binary a daemon runs for runtime io.containerd.runc.v2, one per task or
// group of tasks, which outlives the daemon. Both this project's daemon and
// containerd's (1.6 to 2.x) start it.
package main

import (
	"github.com/llitfkitfk/containerd/runtime/v2/runc"
	"github.com/llitfkitfk/containerd/runtime/v2/shim"
)

func main() {
	shim.Run(runc.New())
}
