package sys

import (
	"os"
	"strings"
	"sync"
)

var (
	userNSOnce sync.Once
	inUserNS   bool
)

// RunningInUserNS reports whether the process runs in a user namespace
// other than the initial one, where device nodes cannot be created and
// overlay upper dirs cannot be written directly. The initial namespace maps
// all 2^32-1 IDs from 0 to 0.
func RunningInUserNS() bool {
	userNSOnce.Do(func() {
		b, err := os.ReadFile("/proc/self/uid_map")
		if err != nil {
			return
		}
		f := strings.Fields(string(b))
		inUserNS = !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
	})
	return inUserNS
}
