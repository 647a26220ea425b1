package oci

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/llitfkitfk/containerd/containers"
	"github.com/llitfkitfk/containerd/mount"
)

var (
	// ErrNoUsersFound is returned when a user is not in the container's
	// /etc/passwd.
	ErrNoUsersFound = errors.New("no users found")
	// ErrNoGroupsFound is returned when a group is not in the
	// container's /etc/group.
	ErrNoGroupsFound = errors.New("no groups found")
)

// User is an entry of /etc/passwd.
type User struct {
	Name  string
	UID   uint32
	GID   uint32
	Home  string
	Shell string
}

// Group is an entry of /etc/group.
type Group struct {
	Name    string
	GID     uint32
	Members []string
}

// maxID is the largest uid or gid accepted: runc requires ids to fit an
// int32, though the kernel would take more.
const maxID = math.MaxInt32

// maxUserFileSize bounds how much of /etc/passwd or /etc/group is read: a
// hostile image could make them huge, or make them a device that never
// ends.
const maxUserFileSize = 10 << 20

// WithUser sets the process's user from "user", "user:group", "uid" or
// "uid:gid", names looked up in the container's root filesystem's
// /etc/passwd and /etc/group.
//
// A uid alone takes its primary group from /etc/passwd, or 0 if the uid is
// not there; a name must be there. The root filesystem is the container's
// snapshot (c.Snapshotter, c.SnapshotKey), mounted read-only for the
// look-up, or, for a container without one, the spec's absolute root path.
func WithUser(userstr string) SpecOpts {
	return func(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
		userPart, groupPart, hasGroup := strings.Cut(userstr, ":")
		if userPart == "" || (hasGroup && (groupPart == "" || strings.Contains(groupPart, ":"))) {
			return fmt.Errorf("invalid user %q: want user, uid, user:group or uid:gid", userstr)
		}
		uid, uidNumeric, err := parseID(userPart)
		if err != nil {
			return fmt.Errorf("invalid user %q: uid %w", userstr, err)
		}
		if !hasGroup {
			if uidNumeric {
				return WithUserID(uid)(ctx, client, c, s)
			}
			return WithUsername(userPart)(ctx, client, c, s)
		}
		gid, gidNumeric, err := parseID(groupPart)
		if err != nil {
			return fmt.Errorf("invalid user %q: gid %w", userstr, err)
		}
		if uidNumeric && gidNumeric {
			return WithUIDGID(uid, gid)(ctx, client, c, s)
		}
		return withRootFS(ctx, client, c, s, func(root *os.Root) error {
			if !uidNumeric {
				u, err := lookupUser(root, func(u User) bool { return u.Name == userPart }, userPart)
				if err != nil {
					return err
				}
				uid = u.UID
			}
			if !gidNumeric {
				g, err := lookupGroup(root, groupPart)
				if err != nil {
					return err
				}
				gid = g.GID
			}
			return WithUIDGID(uid, gid)(ctx, client, c, s)
		})
	}
}

// parseID parses a uid or gid: numeric reports whether s is a number at
// all (else it is a name), err whether that number is out of range.
func parseID(s string) (id uint32, numeric bool, err error) {
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, false, nil
	}
	n, perr := strconv.ParseInt(s, 10, 64)
	if perr != nil || n < 0 || n > maxID {
		return 0, true, fmt.Errorf("%s out of range (0-%d)", s, maxID)
	}
	return uint32(n), true, nil
}

// WithUIDGID sets the process's uid and gid as they are.
func WithUIDGID(uid, gid uint32) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setProcess(s)
		s.Process.User.UID, s.Process.User.GID = uid, gid
		s.Process.User.AdditionalGids = nil
		ensurePrimaryGID(s)
		return nil
	}
}

// WithUserID sets the process's uid, and its gid from the container's
// /etc/passwd (0 if the uid is not there, or there is no such file).
func WithUserID(uid uint32) SpecOpts {
	return func(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
		return withRootFS(ctx, client, c, s, func(root *os.Root) error {
			gid := uint32(0)
			u, err := lookupUser(root, func(u User) bool { return u.UID == uid }, strconv.FormatUint(uint64(uid), 10))
			switch {
			case err == nil:
				gid = u.GID
			case !errors.Is(err, ErrNoUsersFound):
				return err
			}
			return WithUIDGID(uid, gid)(ctx, client, c, s)
		})
	}
}

// WithUsername sets the process's uid and gid to those of username in the
// container's /etc/passwd; an error if it is not there.
func WithUsername(username string) SpecOpts {
	return func(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
		return withRootFS(ctx, client, c, s, func(root *os.Root) error {
			u, err := lookupUser(root, func(u User) bool { return u.Name == username }, username)
			if err != nil {
				return err
			}
			return WithUIDGID(u.UID, u.GID)(ctx, client, c, s)
		})
	}
}

// WithUmask sets the process's umask.
func WithUmask(umask uint32) SpecOpts {
	return func(_ context.Context, _ Client, _ *containers.Container, s *Spec) error {
		setProcess(s)
		s.Process.User.Umask = &umask
		return nil
	}
}

// WithAdditionalGIDs sets the process's supplementary groups to those of
// the container's /etc/group that list user (a name, or a uid looked up in
// /etc/passwd; a ":group" after it is ignored, so that it takes what
// WithUser does) as a member. The primary gid is always among them.
// Missing files mean no supplementary groups.
func WithAdditionalGIDs(user string) SpecOpts {
	user, _, _ = strings.Cut(user, ":")
	return func(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
		setProcess(s)
		return withRootFS(ctx, client, c, s, func(root *os.Root) error {
			s.Process.User.AdditionalGids = nil
			defer ensurePrimaryGID(s)
			name := user
			if uid, numeric, err := parseID(user); err != nil {
				return fmt.Errorf("invalid user %q: uid %w", user, err)
			} else if numeric {
				u, err := lookupUser(root, func(u User) bool { return u.UID == uid }, user)
				if errors.Is(err, ErrNoUsersFound) {
					return nil
				} else if err != nil {
					return err
				}
				name = u.Name
			}
			groups, err := readGroups(root)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			for _, g := range groups {
				// A user's own group is its primary one, not a
				// supplementary one.
				if g.Name != name && slices.Contains(g.Members, name) {
					s.Process.User.AdditionalGids = append(s.Process.User.AdditionalGids, g.GID)
				}
			}
			return nil
		})
	}
}

// WithAppendAdditionalGroups adds supplementary groups, gids or names
// looked up in the container's /etc/group.
func WithAppendAdditionalGroups(groups ...string) SpecOpts {
	return func(ctx context.Context, client Client, c *containers.Container, s *Spec) error {
		setProcess(s)
		var gids []uint32
		var names []string
		for _, g := range groups {
			gid, numeric, err := parseID(g)
			switch {
			case err != nil:
				return fmt.Errorf("invalid group %q: gid %w", g, err)
			case numeric:
				gids = append(gids, gid)
			default:
				names = append(names, g)
			}
		}
		add := func() error {
			defer ensurePrimaryGID(s)
			for _, gid := range gids {
				if !slices.Contains(s.Process.User.AdditionalGids, gid) {
					s.Process.User.AdditionalGids = append(s.Process.User.AdditionalGids, gid)
				}
			}
			return nil
		}
		if len(names) == 0 {
			return add()
		}
		return withRootFS(ctx, client, c, s, func(root *os.Root) error {
			for _, name := range names {
				g, err := lookupGroup(root, name)
				if err != nil {
					return err
				}
				gids = append(gids, g.GID)
			}
			return add()
		})
	}
}

// ensurePrimaryGID puts the process's gid first among its supplementary
// groups, unless it is there already: the runtime sets exactly the
// listed groups, and a process not in its own primary group would lose
// access that group grants (and keep, through a group the image
// denies, access it should not have).
func ensurePrimaryGID(s *Spec) {
	u := &s.Process.User
	if !slices.Contains(u.AdditionalGids, u.GID) {
		u.AdditionalGids = append([]uint32{u.GID}, u.AdditionalGids...)
	}
}

// lookupUser finds the first user of the container's /etc/passwd that
// match accepts; what names the user in errors. A missing file is as an
// empty one.
func lookupUser(root *os.Root, match func(User) bool, what string) (User, error) {
	users, err := readUsers(root)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return User{}, fmt.Errorf("unable to find user %s: %w", what, err)
	}
	for _, u := range users {
		if match(u) {
			return u, nil
		}
	}
	if err != nil {
		return User{}, fmt.Errorf("unable to find user %s: %w: the container has no /etc/passwd", what, ErrNoUsersFound)
	}
	return User{}, fmt.Errorf("unable to find user %s: %w in /etc/passwd", what, ErrNoUsersFound)
}

// lookupGroup finds group name in the container's /etc/group.
func lookupGroup(root *os.Root, name string) (Group, error) {
	groups, err := readGroups(root)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Group{}, fmt.Errorf("unable to find group %s: %w", name, err)
	}
	for _, g := range groups {
		if g.Name == name {
			return g, nil
		}
	}
	if err != nil {
		return Group{}, fmt.Errorf("unable to find group %s: %w: the container has no /etc/group", name, ErrNoGroupsFound)
	}
	return Group{}, fmt.Errorf("unable to find group %s: %w in /etc/group", name, ErrNoGroupsFound)
}

func readUsers(root *os.Root) ([]User, error) {
	var users []User
	err := readUserFile(root, "etc/passwd", func(f []string) {
		// name:password:uid:gid:gecos:home:shell
		if len(f) < 4 {
			return
		}
		uid, ok1 := parseFileID(f[2])
		gid, ok2 := parseFileID(f[3])
		if !ok1 || !ok2 {
			return
		}
		u := User{Name: f[0], UID: uid, GID: gid}
		if len(f) > 5 {
			u.Home = f[5]
		}
		if len(f) > 6 {
			u.Shell = f[6]
		}
		users = append(users, u)
	})
	return users, err
}

func readGroups(root *os.Root) ([]Group, error) {
	var groups []Group
	err := readUserFile(root, "etc/group", func(f []string) {
		// name:password:gid:member,member
		if len(f) < 3 {
			return
		}
		gid, ok := parseFileID(f[2])
		if !ok {
			return
		}
		g := Group{Name: f[0], GID: gid}
		if len(f) > 3 && f[3] != "" {
			for m := range strings.SplitSeq(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					g.Members = append(g.Members, m)
				}
			}
		}
		groups = append(groups, g)
	})
	return groups, err
}

// parseFileID parses an id field of /etc/passwd or /etc/group. An entry
// with a malformed id is skipped, rather than read as 0 (root).
func parseFileID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil || n > maxID {
		return 0, false
	}
	return uint32(n), true
}

// readUserFile calls entry with the colon-separated fields of each entry
// of the file name under root, skipping blank and comment lines.
func readUserFile(root *os.Root, name string, entry func([]string)) error {
	f, err := openInRoot(root, name)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("/%s is not a regular file", name)
	}
	// One byte past the bound tells a file at the bound from a longer one.
	r := bufio.NewReader(io.LimitReader(f, maxUserFileSize+1))
	read := 0
	for {
		line, err := r.ReadString('\n')
		read += len(line)
		if read > maxUserFileSize {
			return fmt.Errorf("/%s is larger than %d bytes", name, maxUserFileSize)
		}
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			entry(strings.Split(strings.TrimRight(line, "\r\n"), ":"))
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read /%s: %w", name, err)
		}
	}
}

// openInRoot opens name in root, following symbolic links as the
// container would see them: an absolute link is relative to root, and
// ".." stops at root. (os.Root itself refuses absolute links, which
// images have: /etc/passwd -> /nix/store/....)
func openInRoot(root *os.Root, name string) (*os.File, error) {
	resolved, err := resolveInRoot(root, name)
	if err != nil {
		return nil, err
	}
	return root.Open(resolved)
}

func resolveInRoot(root *os.Root, name string) (string, error) {
	// Linux gives up after 40 links; so do we.
	const maxLinks = 40
	links := 0
	var done []string
	pending := splitPath(name)
	for len(pending) > 0 {
		part := pending[0]
		pending = pending[1:]
		switch part {
		case ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		cur := path.Join(append(done, part)...)
		fi, err := root.Lstat(cur)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if !fi.IsDir() && len(pending) > 0 {
				return "", &fs.PathError{Op: "open", Path: "/" + cur, Err: syscall.ENOTDIR}
			}
			done = append(done, part)
			continue
		}
		if links++; links > maxLinks {
			return "", &fs.PathError{Op: "open", Path: "/" + name, Err: syscall.ELOOP}
		}
		target, err := root.Readlink(cur)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			done = nil
		}
		pending = append(splitPath(target), pending...)
	}
	if len(done) == 0 {
		return ".", nil
	}
	return path.Join(done...), nil
}

func splitPath(p string) []string {
	var parts []string
	for s := range strings.SplitSeq(p, "/") {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return parts
}

// withRootFS calls fn with the container's root filesystem: its snapshot
// mounted read-only on a temporary directory, or, for a container with no
// snapshot, the spec's root path, which must then be absolute.
func withRootFS(ctx context.Context, client Client, c *containers.Container, s *Spec, fn func(*os.Root) error) error {
	if c == nil || (c.Snapshotter == "" && c.SnapshotKey == "") {
		if s.Root == nil || !filepath.IsAbs(s.Root.Path) {
			return errors.New("looking up users needs the container's snapshot or an absolute root filesystem path")
		}
		return withRootDir(s.Root.Path, fn)
	}
	if c.Snapshotter == "" {
		return errors.New("no snapshotter set for container")
	}
	if c.SnapshotKey == "" {
		return errors.New("rootfs snapshot not created for container")
	}
	if client == nil {
		return errors.New("looking up users in the container's snapshot needs a client")
	}
	mounts, err := client.SnapshotService(c.Snapshotter).Mounts(ctx, c.SnapshotKey)
	if err != nil {
		return fmt.Errorf("mounts of snapshot %s: %w", c.SnapshotKey, err)
	}
	// A lone bind mount is a directory already: read it in place rather
	// than mount it (which needs privileges and costs a mount).
	if len(mounts) == 1 && mounts[0].Type == "bind" && mounts[0].Target == "" {
		return withRootDir(mounts[0].Source, fn)
	}
	return mount.WithTempMount(ctx, readonlyMounts(mounts), func(dir string) error {
		return withRootDir(dir, fn)
	})
}

func withRootDir(dir string, fn func(*os.Root) error) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("open root filesystem: %w", err)
	}
	defer root.Close()
	return fn(root)
}

// readonlyMounts returns mounts changed to mount read-only: an overlay's
// upper directory becomes its top lower one (an overlay with an upper
// directory cannot be read-only), others get "ro". Reading only, the
// unmount then has nothing to write back.
func readonlyMounts(mounts []mount.Mount) []mount.Mount {
	out := make([]mount.Mount, len(mounts))
	for i, m := range mounts {
		m.Options = slices.Clone(m.Options)
		if m.Type == "overlay" {
			m.Options = readonlyOverlay(m.Options)
		} else {
			m.Options = slices.DeleteFunc(m.Options, func(o string) bool { return o == "rw" })
			m.Options = append(m.Options, "ro")
		}
		out[i] = m
	}
	return out
}

func readonlyOverlay(opts []string) []string {
	var upper string
	out := make([]string, 0, len(opts))
	for _, o := range opts {
		switch {
		case strings.HasPrefix(o, "upperdir="):
			upper = strings.TrimPrefix(o, "upperdir=")
		case strings.HasPrefix(o, "workdir="), o == "volatile", o == "rw":
		default:
			out = append(out, o)
		}
	}
	if upper != "" {
		found := false
		for i, o := range out {
			if lower, ok := strings.CutPrefix(o, "lowerdir="); ok {
				out[i] = "lowerdir=" + upper + ":" + lower
				found = true
			}
		}
		if !found {
			out = append(out, "lowerdir="+upper)
		}
	}
	return append(out, "ro")
}
