package store

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The metadata's JSON: plain fields by encoding/json, the CRI config by
// protojson (the generated structs are not meant for encoding/json).
type sandboxJSON struct {
	SandboxMetadata
	Config json.RawMessage
}

type containerJSON struct {
	ContainerMetadata
	Config json.RawMessage
}

// MarshalSandboxMetadata encodes md for the sandbox container's extension.
func MarshalSandboxMetadata(md SandboxMetadata) ([]byte, error) {
	cfg, err := protojson.Marshal(md.Config)
	if err != nil {
		return nil, err
	}
	md.Config = nil
	return json.Marshal(sandboxJSON{SandboxMetadata: md, Config: cfg})
}

// UnmarshalSandboxMetadata decodes MarshalSandboxMetadata's output.
func UnmarshalSandboxMetadata(b []byte) (SandboxMetadata, error) {
	var j sandboxJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return SandboxMetadata{}, fmt.Errorf("sandbox metadata: %w", err)
	}
	j.SandboxMetadata.Config = &runtime.PodSandboxConfig{}
	if err := protojson.Unmarshal(j.Config, j.SandboxMetadata.Config); err != nil {
		return SandboxMetadata{}, fmt.Errorf("sandbox metadata: config: %w", err)
	}
	return j.SandboxMetadata, nil
}

// MarshalContainerMetadata encodes md for the container's extension.
func MarshalContainerMetadata(md ContainerMetadata) ([]byte, error) {
	cfg, err := protojson.Marshal(md.Config)
	if err != nil {
		return nil, err
	}
	md.Config = nil
	return json.Marshal(containerJSON{ContainerMetadata: md, Config: cfg})
}

// UnmarshalContainerMetadata decodes MarshalContainerMetadata's output.
func UnmarshalContainerMetadata(b []byte) (ContainerMetadata, error) {
	var j containerJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return ContainerMetadata{}, fmt.Errorf("container metadata: %w", err)
	}
	j.ContainerMetadata.Config = &runtime.ContainerConfig{}
	if err := protojson.Unmarshal(j.Config, j.ContainerMetadata.Config); err != nil {
		return ContainerMetadata{}, fmt.Errorf("container metadata: config: %w", err)
	}
	return j.ContainerMetadata, nil
}
