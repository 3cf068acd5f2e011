package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// findModuleRoot walks up from dir to the directory holding go.mod.
func findModuleRoot(dir string) (string, error) {
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod found above the working directory")
		}
		dir = parent
	}
}

// buildService compiles ./cmd/ingestion-service of the module at root into
// dir and returns the binary's path.
func buildService(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "ingestion-service")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/ingestion-service")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/ingestion-service: %w\n%s", err, out)
	}
	return bin, nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// service is one running subject of a scenario: the ingestion-service
// binary, or an external pipeline run by sh. It leads its own process
// group, and what is measured is the whole group.
type service struct {
	cmd      *exec.Cmd
	out      *headBuffer
	exited   chan struct{} // closed when the process has ended; waitErr says how
	waitErr  error
	exitedAt time.Time
}

// startService runs argv with a minimal environment (PATH, HOME and
// TMPDIR from ours, so that no stray KAFKA_* setting leaks in) plus env,
// in a process group of its own.
func startService(argv []string, env []string) (*service, error) {
	base := []string{}
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			base = append(base, k+"="+v)
		}
	}
	s := &service{out: &headBuffer{max: 8 << 10}, exited: make(chan struct{})}
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Env = append(base, env...)
	s.cmd.Stdout = s.out
	s.cmd.Stderr = s.out
	ownGroup(s.cmd)
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		s.exitedAt = time.Now()
		close(s.exited)
	}()
	return s, nil
}

// procUsage is what the kernel says a process group used.
type procUsage struct {
	peakRSS int64 // bytes: the sum of each process's VmHWM
	// cpuSeconds is the time its threads have been on a CPU, user and
	// system, from the scheduler's nanosecond clock.
	cpuSeconds float64
	// wakeups counts its threads' voluntary context switches: each is a
	// thread that blocked (on a timer, a futex, a socket) and was later
	// woken.
	wakeups int64
	procs   int
}

// usage sums the usage of every live process in the service's group from
// /proc. A thread that has already exited is not counted; the benchmark
// reads it while the subject runs, and its processes and the service's
// threads live as long as it does.
func (s *service) usage() (procUsage, error) {
	var u procUsage
	pgid := s.cmd.Process.Pid
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return u, fmt.Errorf("read /proc: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if g, err := processGroup(pid); err != nil || g != pgid {
			continue // gone, or another group's
		}
		if err := addProcess(&u, pid); err != nil {
			if pid == pgid {
				return u, err
			}
			continue // a pipeline's process that ended meanwhile
		}
		u.procs++
	}
	if u.procs == 0 {
		return u, fmt.Errorf("process %d is gone", pgid)
	}
	return u, nil
}

// processGroup reads the process group of pid from /proc/<pid>/stat.
func processGroup(pid int) (int, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which ends at the last ')': state,
	// ppid, pgrp, ...
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 3 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	return strconv.Atoi(f[2])
}

// addProcess adds pid's peak RSS, and its threads' CPU time and voluntary
// context switches, to u.
func addProcess(u *procUsage, pid int) error {
	dir := "/proc/" + strconv.Itoa(pid)
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return fmt.Errorf("read status: %w", err)
	}
	if kb, ok := statusField(status, "VmHWM:"); ok {
		u.peakRSS += kb << 10
	}
	tasks, err := os.ReadDir(dir + "/task")
	if err != nil {
		return fmt.Errorf("read tasks: %w", err)
	}
	for _, t := range tasks {
		// schedstat: nanoseconds on a CPU, nanoseconds waiting, slices.
		if b, err := os.ReadFile(dir + "/task/" + t.Name() + "/schedstat"); err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				if ns, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					u.cpuSeconds += float64(ns) / 1e9
				}
			}
		}
		if b, err := os.ReadFile(dir + "/task/" + t.Name() + "/status"); err == nil {
			if n, ok := statusField(b, "voluntary_ctxt_switches:"); ok {
				u.wakeups += n
			}
		}
	}
	return nil
}

// statusField returns the first number after name in a /proc status file.
func statusField(status []byte, name string) (int64, bool) {
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, name); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// stop sends SIGTERM to the group and waits for its leader to exit 0.
func (s *service) stop(timeout time.Duration) error {
	if err := signalGroup(s.cmd.Process.Pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM: %w", err)
	}
	select {
	case <-s.exited:
	case <-time.After(timeout):
		s.kill()
		return fmt.Errorf("%s did not exit within %v of SIGTERM; output:\n%s", s.cmd.Path, timeout, s.out)
	}
	if s.waitErr != nil {
		return fmt.Errorf("service exit: %w; output:\n%s", s.waitErr, s.out)
	}
	return nil
}

// kill ends the group if it still runs, and waits for its leader.
func (s *service) kill() {
	select {
	case <-s.exited:
	default:
		_ = signalGroup(s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

// headBuffer keeps the first max bytes written to it, for error messages.
type headBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *headBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *headBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
