//go:build !unix

package main

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// ownGroup does nothing here: this platform has no process groups.
func ownGroup(*exec.Cmd) {}

// signalGroup kills the process pid alone: this platform has neither
// process groups nor SIGTERM.
func signalGroup(pid int, _ syscall.Signal) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

// exitUsage is the ended leader's CPU time; this platform does not count
// context switches.
func (s *service) exitUsage() (procUsage, error) {
	ps := s.cmd.ProcessState
	if ps == nil {
		return procUsage{}, errors.New("the process has not ended")
	}
	return procUsage{cpuSeconds: (ps.UserTime() + ps.SystemTime()).Seconds(), procs: 1}, nil
}
