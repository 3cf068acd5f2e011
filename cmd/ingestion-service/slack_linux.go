//go:build linux

package main

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"
)

// selfExe is the binary setTimerSlack executes again.
var selfExe = "/proc/self/exe"

// prctl(2) options, and the kernel's default timer slack.
const (
	prSetTimerSlack    = 29
	prGetTimerSlack    = 30
	kernelDefaultSlack = 50 * time.Microsecond
)

// setTimerSlack gives the process the timer slack want (TIMER_SLACK) and
// returns the slack it runs with.
//
// A thread's slack is inherited by the threads it starts, and across
// execve(2); the Go runtime starts its threads, its monitor among them,
// before main runs. So the slack is set on this thread and the binary is
// executed again, with the same arguments and environment and the same
// process ID: the new image's threads all descend from a thread with the
// slack. It then finds the slack in place and returns. With explicit
// false (TIMER_SLACK unset), a slack other than the kernel's default is
// left alone: a supervisor chose it.
//
// It returns without executing anything when the slack is already want,
// when want is 0, or on an error, which it returns: the service then runs
// with the slack it has.
func setTimerSlack(want time.Duration, explicit bool) (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cur, err := timerSlack()
	if err != nil {
		return 0, err
	}
	if want <= 0 || cur == want || (!explicit && cur != kernelDefaultSlack) {
		return cur, nil
	}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, uintptr(want.Nanoseconds()), 0); errno != 0 {
		return cur, fmt.Errorf("prctl(PR_SET_TIMERSLACK, %d): %w", want.Nanoseconds(), errno)
	}
	err = syscall.Exec(selfExe, os.Args, os.Environ())
	// Still here: the exec failed. This thread goes back to its slack.
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, uintptr(cur.Nanoseconds()), 0)
	return cur, fmt.Errorf("execute the binary again with the timer slack set: %w", err)
}

// timerSlack returns the calling thread's timer slack.
func timerSlack() (time.Duration, error) {
	ns, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prGetTimerSlack, 0, 0)
	if errno != 0 {
		return 0, fmt.Errorf("prctl(PR_GET_TIMERSLACK): %w", errno)
	}
	return time.Duration(ns), nil
}
