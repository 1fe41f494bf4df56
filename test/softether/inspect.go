package softether

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cpuwhy/cpuwhy/internal/proc"
)

// ThreadCPU is one thread's use of the CPU over a window, from the
// scheduler's own accounting (/proc/PID/task/TID/schedstat, nanoseconds
// on the CPU): a ground truth that does not depend on cpuwhy.
type ThreadCPU struct {
	TID int
	CPU float64 // percent of one core
}

// ThreadsCPU measures every thread of pid over window, busiest first.
// Threads that start or end within the window are left out.
func ThreadsCPU(pid int, window time.Duration) ([]ThreadCPU, error) {
	before, err := proc.FS{}.ThreadSchedstats(pid)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	time.Sleep(window)
	after, err := proc.FS{}.ThreadSchedstats(pid)
	if err != nil {
		return nil, err
	}
	elapsed := time.Since(start)
	var out []ThreadCPU
	for tid, t1 := range after {
		t0, ok := before[tid]
		if !ok {
			continue
		}
		out = append(out, ThreadCPU{TID: tid, CPU: 100 * float64(t1.OnCPU-t0.OnCPU) / float64(elapsed)})
	}
	slices.SortFunc(out, func(a, b ThreadCPU) int {
		if c := cmp.Compare(b.CPU, a.CPU); c != 0 {
			return c
		}
		return cmp.Compare(a.TID, b.TID)
	})
	return out, nil
}

// UDPSockets counts the UDP sockets process pid holds: its descriptors
// whose inode is in the UDP table of its network namespace. With
// SecureNAT busy, nearly all are its sessions' sockets.
func UDPSockets(pid int) (int, error) {
	table, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/udp", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the UDP table of %d: %w", pid, err)
	}
	inodes, err := parseUDPInodes(table)
	if err != nil {
		return 0, fmt.Errorf("UDP table of %d: %w", pid, err)
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return 0, fmt.Errorf("listing the descriptors of %d: %w", pid, err)
	}
	n := 0
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		inode, ok := strings.CutPrefix(link, "socket:[")
		if !ok {
			continue
		}
		if inodes[strings.TrimSuffix(inode, "]")] {
			n++
		}
	}
	return n, nil
}

// parseUDPInodes returns the inodes of the sockets in a /proc/net/udp
// table.
func parseUDPInodes(table []byte) (map[string]bool, error) {
	inodes := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(table))
	first := true
	for sc.Scan() {
		if first { // the header
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			return nil, fmt.Errorf("malformed line %q", sc.Text())
		}
		inodes[f[9]] = true
	}
	return inodes, sc.Err()
}
