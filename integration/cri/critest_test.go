//go:build integration

package cri

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// critestEnv turns TestCritest on: it takes minutes, so `make critest`
// runs it, not every `go test` of the package.
const critestEnv = "CRI_CRITEST"

// critestSkips are the specs this machine cannot pass whatever the
// runtime, each with its reason; they are left out with -ginkgo.skip.
var critestSkips = []struct{ pattern, reason string }{
	// The kernel has no AppArmor (no /sys/kernel/security/apparmor):
	// no profile can be loaded or applied.
	{"AppArmor", "this kernel has no AppArmor"},
	// The digest names the bytes of the image in gcr.io itself, which
	// a locally built stand-in cannot reproduce.
	{"public image with digest", "the digest names the real registry's bytes, which a local image cannot have"},
}

// TestCritest runs critest (cri-tools v1.37.0, bin/cri/critest) in its
// conformance mode against the daemon and fails if any spec fails.
func TestCritest(t *testing.T) {
	if os.Getenv(critestEnv) == "" {
		t.Skipf("set %s=1 (make critest) to run critest's conformance specs", critestEnv)
	}
	d := startDaemon(t)
	var skips []string
	for _, s := range critestSkips {
		skips = append(skips, s.pattern)
	}
	// $CRITEST_REPORT keeps the JSON report (per-spec outcomes and
	// times) after the run.
	report := os.Getenv("CRITEST_REPORT")
	if report == "" {
		report = filepath.Join(d.LogDir, "critest.json")
	}
	args := []string{
		"-runtime-endpoint", d.Endpoint,
		"-image-endpoint", d.Endpoint,
		// The NRI specs run only when given the socket.
		"-nri-socket", d.NRISocket,
		"-ginkgo.json-report", report,
		"-ginkgo.skip", strings.Join(skips, "|"),
		"-ginkgo.flake-attempts", "0",
		"-ginkgo.no-color",
	}
	if focus := os.Getenv("CRITEST_FOCUS"); focus != "" {
		args = append(args, "-ginkgo.focus", focus)
	}
	// critest runs parallel nodes through the ginkgo CLI, which
	// cri-deps builds beside it.
	if n := os.Getenv("CRITEST_PARALLEL"); n != "" {
		args = append(args, "-parallel", n)
	}
	if v := os.Getenv("CRITEST_ARGS"); v != "" {
		args = append(args, strings.Fields(v)...)
	}
	cmd := exec.Command(filepath.Join(repoRoot, "bin", "cri", "critest"), args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "PATH="+filepath.Join(repoRoot, "bin", "cri")+":"+os.Getenv("PATH"))
	// critest reads the crictl config; its own default is /etc/crictl.yaml.
	cmd.Dir = d.LogDir
	start := time.Now()
	err := cmd.Run()
	t.Logf("critest against %s (%s) took %v", d.Name, d.Binary, time.Since(start).Round(time.Second))
	summarize(t, report)
	if err != nil {
		t.Fatalf("critest: %v", err)
	}
}

// summarize logs the specs critest ran from its JSON report by outcome,
// with the reason of each skip, so that a run's log says which specs the
// runtime itself skipped and why.
func summarize(t *testing.T, report string) {
	b, err := os.ReadFile(report)
	if err != nil {
		t.Logf("no critest report: %v", err)
		return
	}
	var suites []struct {
		SpecReports []struct {
			LeafNodeType            string
			ContainerHierarchyTexts []string
			LeafNodeText            string
			State                   string
			Failure                 struct{ Message string }
		}
	}
	if err := json.Unmarshal(b, &suites); err != nil {
		t.Logf("critest report: %v", err)
		return
	}
	counts := map[string]int{}
	leftOut := 0
	var lines []string
	for _, s := range suites {
		for _, r := range s.SpecReports {
			if r.LeafNodeType != "It" {
				continue
			}
			name := strings.Join(append(r.ContainerHierarchyTexts, r.LeafNodeText), " ")
			msg, _, _ := strings.Cut(r.Failure.Message, "\n")
			switch {
			case r.State == "skipped" && msg == "":
				// Left out by -ginkgo.skip or -ginkgo.focus.
				leftOut++
				continue
			case r.State != "passed":
				lines = append(lines, fmt.Sprintf("%s: %s: %s", r.State, name, msg))
			}
			counts[r.State]++
		}
	}
	sort.Strings(lines)
	t.Logf("critest specs: %d passed, %d failed, %d skipped by the specs themselves, %d left out by the run's skip and focus\n%s",
		counts["passed"], counts["failed"]+counts["panicked"]+counts["timedout"]+counts["interrupted"]+counts["aborted"],
		counts["skipped"], leftOut, strings.Join(lines, "\n"))
}
