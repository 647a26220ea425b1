package main

// The CRI plugin (io.containerd.grpc.v1.cri), through which the kubelet
// runs pods on the daemon.
import _ "github.com/llitfkitfk/containerd/cri"
