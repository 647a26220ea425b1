package server

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/api/types/runc/options"
	"github.com/llitfkitfk/containerd/cri/netns"
	"github.com/llitfkitfk/containerd/cri/store"
	"github.com/llitfkitfk/containerd/errdefs"
)

// PodSandboxStatus reports a sandbox; verbose adds containerd's "info"
// JSON (pid, process status, runtime spec, CNI result...).
func (s *Service) PodSandboxStatus(ctx context.Context, r *runtime.PodSandboxStatusRequest) (*runtime.PodSandboxStatusResponse, error) {
	ctx = withNamespace(ctx)
	sb, err := s.sandboxes.Get(r.GetPodSandboxId())
	if err != nil {
		return nil, errdefs.ToGRPC(fmt.Errorf("sandbox %q: %w", r.GetPodSandboxId(), err))
	}
	resp := &runtime.PodSandboxStatusResponse{Status: s.criSandboxStatus(sb)}
	if r.GetVerbose() {
		info, err := s.sandboxInfo(ctx, sb)
		if err != nil {
			return nil, errdefs.ToGRPC(err)
		}
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// sandboxIPs are the pod's addresses while its network is up.
func sandboxIPs(md *store.SandboxMetadata) (string, []string) {
	if md.NetNSPath == "" {
		// Host network: not the CRI's to report.
		return "", nil
	}
	if closed, err := netns.Load(md.NetNSPath).Closed(); err != nil || closed {
		return "", nil
	}
	return md.IP, md.AdditionalIPs
}

func (s *Service) criSandboxStatus(sb *store.Sandbox) *runtime.PodSandboxStatus {
	md := &sb.Metadata
	st := sb.Status()
	state := runtime.PodSandboxState_SANDBOX_NOTREADY
	if st.State == store.SandboxReady {
		state = runtime.PodSandboxState_SANDBOX_READY
	}
	ip, more := sandboxIPs(md)
	var extra []*runtime.PodIP
	for _, a := range more {
		extra = append(extra, &runtime.PodIP{Ip: a})
	}
	return &runtime.PodSandboxStatus{
		Id:        md.ID,
		Metadata:  md.Config.GetMetadata(),
		State:     state,
		CreatedAt: st.CreatedAt.UnixNano(),
		Network:   &runtime.PodSandboxNetworkStatus{Ip: ip, AdditionalIps: extra},
		Linux: &runtime.LinuxPodSandboxStatus{Namespaces: &runtime.Namespace{
			Options: md.Config.GetLinux().GetSecurityContext().GetNamespaceOptions(),
		}},
		Labels:         md.Config.GetLabels(),
		Annotations:    md.Config.GetAnnotations(),
		RuntimeHandler: md.RuntimeHandler,
	}
}

// sandboxInfo is the verbose status's "info", with containerd's keys so
// that tools reading `crictl inspectp` (jq '.info.pid', '.info.runtimeSpec')
// work alike.
type sandboxInfo struct {
	Pid            uint32                    `json:"pid"`
	Status         string                    `json:"processStatus"`
	NetNSClosed    bool                      `json:"netNamespaceClosed"`
	Image          string                    `json:"image"`
	SnapshotKey    string                    `json:"snapshotKey"`
	Snapshotter    string                    `json:"snapshotter"`
	RuntimeType    string                    `json:"runtimeType"`
	RuntimeOptions *options.Options          `json:"runtimeOptions"`
	Config         *runtime.PodSandboxConfig `json:"config"`
	RuntimeSpec    *specs.Spec               `json:"runtimeSpec"`
	CNIResult      json.RawMessage           `json:"cniResult"`
	Metadata       sandboxInfoMetadata       `json:"sandboxMetadata"`
}

type sandboxInfoMetadata struct {
	ID             string
	Name           string
	Config         *runtime.PodSandboxConfig
	NetNSPath      string
	IP             string
	AdditionalIPs  []string
	RuntimeHandler string
	CNIResult      json.RawMessage
}

func (s *Service) sandboxInfo(ctx context.Context, sb *store.Sandbox) ([]byte, error) {
	md := &sb.Metadata
	info := sandboxInfo{
		Pid:       sb.Status().Pid,
		Config:    md.Config,
		CNIResult: rawOrNull(md.CNIResult),
		Metadata: sandboxInfoMetadata{
			ID: md.ID, Name: md.Name, Config: md.Config, NetNSPath: md.NetNSPath, IP: md.IP,
			AdditionalIPs: md.AdditionalIPs, RuntimeHandler: md.RuntimeHandler, CNIResult: rawOrNull(md.CNIResult),
		},
		// "deleted" when there is no task, as containerd says.
		Status: "deleted",
	}
	if st, err := s.deps.Tasks.State(ctx, md.ID, ""); err == nil {
		info.Status = st.Status.String()
	} else if !errdefs.IsNotFound(err) {
		info.Status = "unknown"
	}
	if md.NetNSPath != "" {
		info.NetNSClosed, _ = netns.Load(md.NetNSPath).Closed()
	}
	if rec, err := s.deps.Containers.Get(ctx, md.ID); err == nil {
		info.Image, info.SnapshotKey, info.Snapshotter = rec.Image, rec.SnapshotKey, rec.Snapshotter
		info.RuntimeType = rec.Runtime.Name
		if o := rec.Runtime.Options; o != nil {
			opts := &options.Options{}
			if proto.Unmarshal(o.GetValue(), opts) == nil {
				info.RuntimeOptions = opts
			}
		}
		if rec.Spec != nil {
			var sp specs.Spec
			if err := json.Unmarshal(rec.Spec.GetValue(), &sp); err == nil {
				info.RuntimeSpec = &sp
			}
		}
	} else if !errdefs.IsNotFound(err) {
		return nil, err
	}
	return json.Marshal(info)
}

func rawOrNull(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}

// ListPodSandbox lists sandboxes, those matching the filter if any: an id
// (or a unique prefix of one), a state, labels that must all match.
func (s *Service) ListPodSandbox(ctx context.Context, r *runtime.ListPodSandboxRequest) (*runtime.ListPodSandboxResponse, error) {
	var out []*runtime.PodSandbox
	for _, sb := range s.filterSandboxes(r.GetFilter().GetId(), r.GetFilter().GetLabelSelector()) {
		st := s.criSandboxStatus(sb)
		if f := r.GetFilter().GetState(); f != nil && f.GetState() != st.State {
			continue
		}
		out = append(out, &runtime.PodSandbox{
			Id:             st.Id,
			Metadata:       st.Metadata,
			State:          st.State,
			CreatedAt:      st.CreatedAt,
			Labels:         st.Labels,
			Annotations:    st.Annotations,
			RuntimeHandler: st.RuntimeHandler,
		})
	}
	return &runtime.ListPodSandboxResponse{Items: out}, nil
}

// filterSandboxes returns the sandboxes whose id is id or starts with it
// ("" for all) and whose labels include selector.
func (s *Service) filterSandboxes(id string, selector map[string]string) []*store.Sandbox {
	var all []*store.Sandbox
	if id != "" {
		// As containerd: an id that is no sandbox's, or a prefix of
		// several, lists nothing.
		sb, err := s.sandboxes.Get(id)
		if err != nil {
			return nil
		}
		all = []*store.Sandbox{sb}
	} else {
		all = s.sandboxes.List()
	}
	out := all[:0:0]
next:
	for _, sb := range all {
		labels := sb.Metadata.Config.GetLabels()
		for k, v := range selector {
			if got, ok := labels[k]; !ok || got != v {
				continue next
			}
		}
		out = append(out, sb)
	}
	return out
}

// emitSandboxEvent sends a sandbox's lifecycle event to GetContainerEvents
// streams, as containerd does: the container id is the sandbox's, with the
// sandbox's status and its containers'.
func (s *Service) emitSandboxEvent(ctx context.Context, sb *store.Sandbox, t runtime.ContainerEventType) {
	ev := &runtime.ContainerEventResponse{
		ContainerId:        sb.Metadata.ID,
		ContainerEventType: t,
		CreatedAt:          time.Now().UnixNano(),
		PodSandboxStatus:   s.criSandboxStatus(sb),
	}
	ev.ContainersStatuses = s.sandboxContainerStatuses(sb.Metadata.ID)
	s.events.emit(ev)
}
