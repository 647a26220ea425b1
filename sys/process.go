package sys

import (
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// OOM score bounds, as the kernel defines them.
const (
	OOMScoreAdjMin = -1000
	OOMScoreAdjMax = 1000
)

// SetOOMScore sets the oom_score_adj of process pid.
func SetOOMScore(pid, score int) error {
	if score < OOMScoreAdjMin || score > OOMScoreAdjMax {
		return fmt.Errorf("oom score %d is outside [%d, %d]", score, OOMScoreAdjMin, OOMScoreAdjMax)
	}
	path := fmt.Sprintf("/proc/%d/oom_score_adj", pid)
	if err := os.WriteFile(path, []byte(strconv.Itoa(score)), 0o644); err != nil {
		return fmt.Errorf("set oom score: %w", err)
	}
	return nil
}

// GetOOMScore returns the oom_score_adj of process pid.
func GetOOMScore(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(string(trimNewline(b)))
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// SetSubreaper makes this process the reaper of orphaned descendants, so
// that shims whose parent exits are re-parented here rather than to init.
func SetSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// GetSubreaper reports whether this process is a child subreaper.
func GetSubreaper() (bool, error) {
	var i int32
	if err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&i)), 0, 0, 0); err != nil {
		return false, err
	}
	return i != 0, nil
}
