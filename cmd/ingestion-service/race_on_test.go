//go:build race

package main

// raceEnabled makes the end-to-end tests build the service with -race too.
const raceEnabled = true
