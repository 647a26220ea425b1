//go:build !no_cri

package main

// The CRI plugin (io.containerd.grpc.v1.cri), through which the kubelet
// runs pods on the daemon. The no_cri build tag, as in containerd 1.x,
// leaves it out, and with it the packages it links (the NRI and CNI
// libraries, wazero, Kubernetes' streaming code): their initialisation
// and code pages are 5.5 MB of the daemon's RSS whether or not the plugin
// is enabled (28.5 MB against 23 MB after importing an image and running
// three containers).
import _ "github.com/llitfkitfk/containerd/cri"
