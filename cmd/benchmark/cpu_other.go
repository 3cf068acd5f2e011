//go:build !unix

package main

// selfCPU returns 0 here: the benchmark's CPU figures need getrusage(2),
// which this platform lacks.
func selfCPU() float64 { return 0 }
