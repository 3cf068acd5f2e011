// Package health tracks whether one dependency of the service is usable
// right now, and since when, so that readiness probes can report it.
package health

import (
	"sync"
	"time"
)

// Status is a dependency's readiness at one moment.
type Status struct {
	// Up is true while the dependency is usable.
	Up bool
	// Since is when the dependency entered its current state (Up or down).
	Since time.Time
	// Detail says, for a human, why the dependency is in this state.
	Detail string
}

// State holds a dependency's current Status. It is safe for concurrent use.
// The zero value is down since the zero time with no detail; use NewState.
type State struct {
	now func() time.Time

	mu     sync.Mutex
	status Status
}

// NewState returns a State that starts down with the given detail.
func NewState(detail string) *State {
	return newState(detail, time.Now)
}

func newState(detail string, now func() time.Time) *State {
	return &State{now: now, status: Status{Since: now(), Detail: detail}}
}

// Set records the dependency's state. Since changes only when up differs
// from the current state, so repeated reports of the same state keep the
// time it began; the detail is always replaced.
func (s *State) Set(up bool, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if up != s.status.Up {
		s.status.Up = up
		s.status.Since = s.now()
	}
	s.status.Detail = detail
}

// Status returns the current state.
func (s *State) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}
