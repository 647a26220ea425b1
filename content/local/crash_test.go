package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/llitfkitfk/containerd/content"
)

// The crash tests run this test binary again as a writer that dies by
// SIGKILL, as the daemon would under kill -9.
const (
	crashRootEnv = "LOCAL_CONTENT_CRASH_ROOT"
	crashModeEnv = "LOCAL_CONTENT_CRASH_MODE"
	crashRef     = "crash-ref"
	crashSize    = 48 << 20
	crashChunk   = 1 << 20
	crashHalf    = crashSize/2 + 4321
)

func TestMain(m *testing.M) {
	if root := os.Getenv(crashRootEnv); root != "" {
		if err := crashWriter(root, os.Getenv(crashModeEnv)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	os.Exit(m.Run())
}

// crashWriter writes the crash blob and is killed before it commits:
// in mode "self" it kills itself after exactly crashHalf bytes, otherwise
// it keeps writing, reporting each chunk, until the parent kills it.
func crashWriter(root, mode string) error {
	s, err := NewStore(root)
	if err != nil {
		return err
	}
	p, desc := blob(crashSize, 42)
	w, err := s.Writer(context.Background(), content.WithRef(crashRef), content.WithDescriptor(desc))
	if err != nil {
		return err
	}
	if mode == "self" {
		if _, err := w.Write(p[:crashHalf]); err != nil {
			return err
		}
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	for off := 0; off < len(p); off += crashChunk {
		if _, err := w.Write(p[off:min(off+crashChunk, len(p))]); err != nil {
			return err
		}
		fmt.Println(off + crashChunk)
	}
	select {} // never commits
}

func TestKill9(t *testing.T) {
	for _, mode := range []string{"self", "parent"} {
		t.Run(mode, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), crashRootEnv+"="+root, crashModeEnv+"="+mode)
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var reported int64
			if mode == "parent" {
				// Kill it a moment after its first chunk: mid-write.
				sc := bufio.NewScanner(out)
				if !sc.Scan() {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatal("the writer reported nothing")
				}
				reported, _ = strconv.ParseInt(sc.Text(), 10, 64)
				time.Sleep(3 * time.Millisecond)
				cmd.Process.Signal(syscall.SIGKILL)
			}
			err = cmd.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("writer ended with %v, want death by SIGKILL", err)
			}

			if files := blobFiles(t, root); len(files) != 0 {
				t.Fatalf("blobs after the crash: %v", files)
			}
			s, err := NewStore(root)
			if err != nil {
				t.Fatal(err)
			}
			p, desc := blob(crashSize, 42)
			sts, err := s.ListStatuses(ctx)
			if err != nil || len(sts) != 1 {
				t.Fatalf("ListStatuses after the crash: %v, %v", sts, err)
			}
			st := sts[0]
			t.Logf("killed at offset %d of %d", st.Offset, crashSize)
			switch {
			case st.Ref != crashRef || st.Total != crashSize:
				t.Fatalf("Status = %+v", st)
			case mode == "self" && st.Offset != crashHalf:
				t.Fatalf("offset %d, want %d", st.Offset, crashHalf)
			case st.Offset < reported || st.Offset == 0 || st.Offset > crashSize:
				t.Fatalf("offset %d, want at least the %d reported", st.Offset, reported)
			}

			// Resume where it stopped; the lock died with the process.
			w := openWriter(t, s, crashRef, desc)
			if got, _ := w.Status(); got.Offset != st.Offset {
				t.Fatalf("resumed at %d, want %d", got.Offset, st.Offset)
			}
			write(t, w, p[st.Offset:])
			if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
				t.Fatal(err)
			}
			checkBlob(t, s, p)
			if sts, _ := s.ListStatuses(ctx); len(sts) != 0 {
				t.Fatalf("ingests left: %v", sts)
			}
		})
	}
}
