package images

import (
	"context"
	"fmt"
	"slices"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/llitfkitfk/containerd/errdefs"
	"github.com/llitfkitfk/containerd/log"
	"github.com/llitfkitfk/containerd/snapshots"
)

// fsStats is the last sample of the snapshotters' usage.
type fsStats struct {
	taken time.Time
	// usage by snapshotter, of the k8s.io namespace's snapshots.
	usage map[string]fsUsage
	// committed caches the usage of committed snapshots, which cannot
	// change, by snapshotter and key: a sample then only asks the active
	// ones.
	committed map[string]map[string]snapshots.Usage
}

type fsUsage struct {
	taken         time.Time
	bytes, inodes uint64
	haveSnapshots bool
}

// ImageFsInfo reports the usage of the filesystem images are unpacked
// on, as containerd's CRI does: the snapshots of the k8s.io namespace in
// the configured snapshotter (mountpoint: its root directory), and in any
// other snapshotter that has some. The usage is sampled at most once per
// stats_collect_period (and again after a pull or removal through this
// service); container_filesystems is left empty (the
// containers' writable layers are on the same snapshotters).
func (s *Service) ImageFsInfo(ctx context.Context, r *runtime.ImageFsInfoRequest) (*runtime.ImageFsInfoResponse, error) {
	ctx = withNamespace(ctx)
	usage, err := s.fsUsage(ctx)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	main := s.config.Containerd.Snapshotter
	names := []string{main}
	for name, u := range usage {
		if name != main && u.haveSnapshots {
			names = append(names, name)
		}
	}
	slices.Sort(names[1:])
	resp := &runtime.ImageFsInfoResponse{}
	for _, name := range names {
		u := usage[name]
		if u.taken.IsZero() {
			u.taken = time.Now()
		}
		resp.ImageFilesystems = append(resp.ImageFilesystems, &runtime.FilesystemUsage{
			Timestamp:  u.taken.UnixNano(),
			FsId:       &runtime.FilesystemIdentifier{Mountpoint: s.deps.ImageFSPaths[name]},
			UsedBytes:  &runtime.UInt64Value{Value: u.bytes},
			InodesUsed: &runtime.UInt64Value{Value: u.inodes},
		})
	}
	return resp, nil
}

// fsChanged drops the last sample: a pull or removal here changes the
// usage, and the next ImageFsInfo should see it rather than wait out the
// period.
func (s *Service) fsChanged() {
	s.fsMu.Lock()
	s.fsStats.usage = nil
	s.fsMu.Unlock()
}

// fsUsage returns the last sample if it is recent enough, else takes one.
func (s *Service) fsUsage(ctx context.Context) (map[string]fsUsage, error) {
	s.fsMu.Lock()
	defer s.fsMu.Unlock()
	period := time.Duration(s.config.StatsCollectPeriod) * time.Second
	if s.fsStats.usage != nil && time.Since(s.fsStats.taken) < period {
		return s.fsStats.usage, nil
	}
	if s.fsStats.committed == nil {
		s.fsStats.committed = map[string]map[string]snapshots.Usage{}
	}
	usage := map[string]fsUsage{}
	for name, sn := range s.deps.Snapshotters {
		u, err := s.sample(ctx, name, sn)
		if err != nil {
			return nil, err
		}
		usage[name] = u
	}
	s.fsStats.usage, s.fsStats.taken = usage, time.Now()
	return usage, nil
}

// sample sums the usage of one snapshotter's snapshots.
func (s *Service) sample(ctx context.Context, name string, sn snapshots.Snapshotter) (fsUsage, error) {
	var infos []snapshots.Info
	if err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		infos = append(infos, info)
		return nil
	}); err != nil {
		return fsUsage{}, fmt.Errorf("walk the snapshots of %s: %w", name, err)
	}
	old := s.fsStats.committed[name]
	kept := map[string]snapshots.Usage{}
	u := fsUsage{taken: time.Now(), haveSnapshots: len(infos) > 0}
	for _, info := range infos {
		usage, ok := old[info.Name]
		if !ok || info.Kind != snapshots.KindCommitted {
			var err error
			usage, err = sn.Usage(ctx, info.Name)
			if err != nil {
				// Removed since the walk, or a snapshotter that cannot
				// say for this one: the sample goes without it.
				if !errdefs.IsNotFound(err) {
					log.G(ctx).WithError(err).WithField("snapshot", info.Name).Debug("CRI: snapshot usage")
				}
				continue
			}
		}
		if info.Kind == snapshots.KindCommitted {
			kept[info.Name] = usage
		}
		u.bytes += uint64(max(usage.Size, 0))
		u.inodes += uint64(max(usage.Inodes, 0))
	}
	s.fsStats.committed[name] = kept
	return u, nil
}
