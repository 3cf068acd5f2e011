//go:build unix

package main

import (
	"errors"
	"os/exec"
	"syscall"
	"time"
)

// ownGroup makes cmd the leader of a new process group, so that a
// pipeline's processes can be measured and signalled together.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends sig to every process of the group led by pid.
func signalGroup(pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}

// exitUsage is what wait4(2) reported for the ended leader: its CPU time
// and voluntary context switches, with those of the children it waited
// for (a shell's pipeline).
func (s *service) exitUsage() (procUsage, error) {
	ru, ok := s.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return procUsage{}, errors.New("no resource usage for the ended process")
	}
	return procUsage{
		cpuSeconds: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds(),
		wakeups:    ru.Nvcsw,
		procs:      1,
	}, nil
}
