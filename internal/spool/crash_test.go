package spool

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// crashChildEnv names the directory in which the child process of TestKill
// appends.
const crashChildEnv = "SPOOL_TEST_CRASH_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		os.Exit(crashChild(dir))
	}
	// Fails the tests if a goroutine they started (a spool's flusher) is
	// still running when they end.
	goleak.VerifyTestMain(m)
}

// crashChild appends records until it is killed, printing each sequence
// number once Append has returned. The policy never fsyncs: what a killed
// process wrote is in the page cache.
func crashChild(dir string) int {
	s, err := Open(Options{Dir: dir, SegmentBytes: 64 * recordBytes})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	for i := uint64(0); i < 10_000_000; i++ {
		p, err := s.Append(payloadOf(i), timeOf(i))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		if _, err := fmt.Fprintln(os.Stdout, p.Seq); err != nil {
			return 2
		}
	}
	return 1 // not killed in time
}

// TestKill kills a process that is appending, with SIGKILL, and checks that
// every record it reported appended is read back.
func TestKill(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGKILL")
	}
	const reported = 3000
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	n := uint64(0)
	for n < reported && lines.Scan() {
		seq, err := strconv.ParseUint(lines.Text(), 10, 64)
		if err != nil || seq != n {
			t.Fatalf("child printed %q, want %d", lines.Text(), n)
		}
		n++
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if n < reported {
		t.Fatalf("child reported %d records, then: %v, %s", n, err, stderr.String())
	}

	s := openSpool(t, Options{Dir: dir, SegmentBytes: 64 * recordBytes})
	recs := readAll(t, s)
	if len(recs) < reported {
		t.Fatalf("read %d records, the child reported %d", len(recs), reported)
	}
	checkRecords(t, recs, seqRange(0, uint64(len(recs))))
	if st := s.Stats(); st.Corruptions != 0 {
		t.Errorf("Stats = %+v, want no damage: a killed process does not tear a write", st)
	}
}
