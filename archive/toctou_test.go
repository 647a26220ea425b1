package archive

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestApplyRacingSymlink swaps a directory inside root with a symlink to
// outside, over and over, while a layer writes, links, deletes and
// chmods through it: each entry lands inside root or fails, whichever
// the swap makes it see, but nothing outside changes.
func TestApplyRacingSymlink(t *testing.T) {
	for _, walk := range []bool{false, true} {
		t.Run(fmt.Sprintf("walk=%v", walk), func(t *testing.T) {
			defer func(old bool) { forceWalk = old }(forceWalk)
			forceWalk = walk
			s := newSandbox(t)
			d, alt := filepath.Join(s.root, "d"), filepath.Join(s.root, "alt")
			must(t, os.Mkdir(d, 0o755))
			must(t, os.Symlink(s.outside, alt))
			// Fill outside with the names the layer writes, so a write
			// that escaped would change a file rather than add one.
			var entries []ent
			for i := 0; i < 300; i++ {
				name := fmt.Sprintf("f%d", i%20)
				switch i % 5 {
				case 0, 1:
					f := fileEnt("d/"+name, "pwned")
					f.Mode = 0o4777
					entries = append(entries, f)
				case 2:
					entries = append(entries, whiteoutEnt("d", name))
				case 3:
					entries = append(entries, linkEnt("d/"+name, "d/f0"))
				case 4:
					entries = append(entries, dirEnt("d/"+name+"/"), fileEnt("d/"+name+"/x", "pwned"))
				}
			}
			for i := 0; i < 20; i++ {
				must(t, os.WriteFile(filepath.Join(s.outside, fmt.Sprintf("f%d", i)), []byte("outside"), 0o644))
			}

			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					unix.Renameat2(unix.AT_FDCWD, d, unix.AT_FDCWD, alt, unix.RENAME_EXCHANGE)
				}
			}()
			before := s.outsideState(t)
			for round := 0; round < 5; round++ {
				apply(t, s.root, entries) // errors are expected
			}
			close(stop)
			wg.Wait()
			if after := s.outsideState(t); after != before {
				t.Errorf("outside root changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}
