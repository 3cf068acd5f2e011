//go:build !linux

package main

import "time"

// setTimerSlack does nothing here: timer slack is a Linux setting.
func setTimerSlack(time.Duration, bool) (time.Duration, error) { return 0, nil }
