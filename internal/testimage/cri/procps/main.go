// Command procps stands in for the two tools critest runs in its busybox
// containers that the distribution's static busybox lacks; it acts as the
// one it is installed as:
//   - ipcs -m: the System V shared memory segments of the process's IPC
//     namespace, as util-linux lists them (the host-IPC specs look for the
//     id of a segment made on the host);
//   - pgrep NAME: the pids of the processes whose name matches the regular
//     expression NAME, but its own; exit status 1 if there are none.
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

func main() {
	switch filepath.Base(os.Args[0]) {
	case "ipcs":
		os.Exit(ipcs())
	case "pgrep":
		os.Exit(pgrep(os.Args[1:]))
	}
	fmt.Fprintf(os.Stderr, "%s: run as ipcs or pgrep\n", os.Args[0])
	os.Exit(2)
}

func ipcs() int {
	f, err := os.Open("/proc/sysvipc/shm")
	if err != nil {
		fmt.Fprintln(os.Stderr, "ipcs:", err)
		return 1
	}
	defer f.Close()
	fmt.Println("\n------ Shared Memory Segments --------")
	fmt.Printf("%-10s %-10s %-10s %-10s %-10s %-10s\n", "key", "shmid", "owner", "perms", "bytes", "nattch")
	s := bufio.NewScanner(f)
	s.Scan() // the header
	for s.Scan() {
		// key shmid perms size cpid lpid nattch uid ...
		fl := strings.Fields(s.Text())
		if len(fl) < 8 {
			continue
		}
		key, _ := strconv.ParseInt(fl[0], 10, 64)
		perms, _ := strconv.ParseInt(fl[2], 10, 64)
		fmt.Printf("0x%08x %-10s %-10s %-10o %-10s %-10s\n", uint32(key), fl[1], fl[7], perms&0o777, fl[3], fl[6])
	}
	fmt.Println()
	return 0
}

func pgrep(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: pgrep NAME")
		return 2
	}
	re, err := regexp.Compile(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgrep:", err)
		return 2
	}
	entries, _ := os.ReadDir("/proc")
	found := 1
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && re.MatchString(strings.TrimSpace(string(comm))) {
			fmt.Println(pid)
			found = 0
		}
	}
	return found
}
