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

// clockTicks is the unit of utime and stime in /proc/<pid>/stat
// (getconf CLK_TCK, 100 on Linux).
const clockTicks = 100

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

// service is one running ingestion-service process.
type service struct {
	cmd     *exec.Cmd
	out     *headBuffer
	exited  chan struct{} // closed when the process has ended; waitErr says how
	waitErr error
}

// startService runs bin with a minimal environment (PATH, HOME and TMPDIR
// from ours, so that no stray KAFKA_* setting leaks in) plus env.
func startService(bin string, env []string) (*service, error) {
	base := []string{}
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			base = append(base, k+"="+v)
		}
	}
	s := &service{out: &headBuffer{max: 8 << 10}, exited: make(chan struct{})}
	s.cmd = exec.Command(bin)
	s.cmd.Env = append(base, env...)
	s.cmd.Stdout = s.out
	s.cmd.Stderr = s.out
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start service: %w", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	return s, nil
}

// procUsage is what the kernel says a process used.
type procUsage struct {
	peakRSS    int64   // bytes (VmHWM)
	cpuSeconds float64 // user + system
}

// usage reads the process's peak RSS and CPU time from /proc.
func (s *service) usage() (procUsage, error) {
	pid := s.cmd.Process.Pid
	var u procUsage
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, fmt.Errorf("read status: %w", err)
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return u, fmt.Errorf("parse VmHWM %q: %w", rest, err)
			}
			u.peakRSS = kb << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, fmt.Errorf("read stat: %w", err)
	}
	// Fields after the command name, which ends at the last ')': state is
	// field 3, utime 14 and stime 15.
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return u, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return u, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	u.cpuSeconds = float64(utime+stime) / clockTicks
	return u, nil
}

// stop sends SIGTERM and waits for the process to exit 0.
func (s *service) stop(timeout time.Duration) error {
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM: %w", err)
	}
	select {
	case <-s.exited:
	case <-time.After(timeout):
		s.kill()
		return fmt.Errorf("service did not exit within %v of SIGTERM; output:\n%s", timeout, s.out)
	}
	if s.waitErr != nil {
		return fmt.Errorf("service exit: %w; output:\n%s", s.waitErr, s.out)
	}
	return nil
}

// kill ends the process if it still runs, and waits for it.
func (s *service) kill() {
	select {
	case <-s.exited:
	default:
		_ = s.cmd.Process.Kill()
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
