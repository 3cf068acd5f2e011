package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Errors of a transactional sink (Config.TransactionalID).
var (
	// ErrNotLeader is returned by Produce while a transactional sink is not
	// active: this replica does not lead the fleet.
	ErrNotLeader = errors.New("kafka sink: this replica does not lead; not writing")
	// ErrFenced is given to the records of a transaction the broker refused
	// because another replica's producer with the same transactional ID
	// started since: this replica no longer leads.
	ErrFenced = errors.New("kafka sink: fenced by another replica's writer")
)

// txn is the state of a transactional sink. Produce holds gate for reading
// while it hands a record to the client; commits and (de)activation hold it
// for writing, so no record is produced while a transaction ends.
type txn struct {
	gate sync.RWMutex
	cl   *kgo.Client // the transactional client; nil while inactive

	// live is cl, for what only reads it (Active, Buffered): they must
	// answer while a commit holds gate, which over a slow or cut link is
	// as long as Kafka takes. A scrape of /metrics or the readiness probe
	// that waited for the gate hung with it.
	live atomic.Pointer[kgo.Client]
	// endingNS is when the transaction being ended began to end, in Unix
	// nanoseconds; 0 while none is. The probe reads it: a commit that
	// waits on Kafka longer than StallAfter makes the sink not ready.
	endingNS atomic.Int64

	mu      sync.Mutex
	pending []*record // acknowledged in the open transaction, not yet committed

	onFenced func() // told, once per activation, that the sink was fenced

	// handoff makes an inactive sink produce through its plain client
	// (HandOff).
	handoff atomic.Bool

	// abandoned ends, with Abandon, every wait on Kafka to end a
	// transaction, present and future.
	abandoned context.Context
	abandon   context.CancelFunc
}

// Abandon makes a transactional sink stop waiting on Kafka to end its
// transactions: a commit under way, and each one after, gives up (the
// client takes some seconds to let go of a request Kafka holds), aborted,
// and its records go back to their owners (the relay keeps them
// in the spool). A commit holds every Produce while it waits, and over a
// link that holds bytes without a reset it waits until Kafka is back:
// shutdown calls Abandon when its time is up, so that it ends on time.
func (s *Sink) Abandon() { s.txn.abandon() }

// transactional reports whether the sink writes through transactions.
func (s *Sink) transactional() bool { return s.cfg.TransactionalID != "" }

// Active reports whether a transactional sink is writing. A sink that is
// not transactional is always active.
func (s *Sink) Active() bool {
	if !s.transactional() {
		return true
	}
	return s.txn.live.Load() != nil
}

// Activate makes a transactional sink write: it starts a transactional
// producer and loads its producer ID, which fences any other producer with
// the same transactional ID (the broker aborts that producer's open
// transaction and refuses its further writes), then opens a transaction.
// onFenced, if not nil, is called (once, from a sink goroutine) if this
// producer is fenced in turn. Activate does nothing if the sink is already
// active, and returns an error if the producer cannot start before ctx
// ends.
func (s *Sink) Activate(ctx context.Context, onFenced func()) error {
	if !s.transactional() {
		return errors.New("kafka sink: Activate needs a TransactionalID")
	}
	s.txn.gate.Lock()
	defer s.txn.gate.Unlock()
	if s.txn.cl != nil {
		return nil
	}
	if s.closed.Load() {
		return ErrClosed
	}
	opts, err := s.cfg.clientOpts()
	if err != nil {
		return err
	}
	opts = append(opts,
		kgo.WithLogger(s.clientLog),
		kgo.TransactionalID(s.cfg.TransactionalID),
		// A transaction outlives a commit interval only when Kafka is
		// slow; past this the coordinator aborts it. Brokers refuse more
		// than transaction.max.timeout.ms, 15 minutes by default.
		kgo.TransactionTimeout(min(max(time.Minute, 10*s.cfg.CommitInterval), 15*time.Minute)),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka sink: transactional client: %w", err)
	}
	if _, _, err := cl.ProducerID(ctx); err != nil {
		cl.Close()
		return fmt.Errorf("kafka sink: start the transactional producer %q: %w", s.cfg.TransactionalID, err)
	}
	if err := cl.BeginTransaction(); err != nil {
		cl.Close()
		return fmt.Errorf("kafka sink: begin a transaction: %w", err)
	}
	s.txn.handoff.Store(false)
	s.txn.cl = cl
	s.txn.live.Store(cl)
	s.txn.onFenced = onFenced
	// What a writer of an earlier lead failed does not make this one
	// look unhealthy.
	s.lastErrNS.Store(0)
	s.log.Info("Writing to Kafka as the fleet's single writer", "transactional_id", s.cfg.TransactionalID)
	return nil
}

// HandOff makes a transactional sink that is not active write through its
// plain client (idempotent, not transactional) while on is true, rather
// than refuse with ErrNotLeader: how a replica that stopped leading hands
// on the matches it kept from its lead and could not deliver then, which
// no other replica has. Those records are not fenced, so the caller first
// leaves out what the topic already holds (RecentIDs); a leader writing
// the same match meanwhile makes a duplicate, never a loss. Activate ends
// it. It does nothing on a sink that is not transactional.
func (s *Sink) HandOff(on bool) {
	if s.transactional() {
		s.txn.handoff.Store(on)
	}
}

// Deactivate stops a transactional sink writing: the open transaction is
// committed within ctx if it can be (so that what Kafka acknowledged is
// delivered), else aborted, and its records are reported failed; then the
// producer is closed. It does nothing on an inactive sink.
func (s *Sink) Deactivate(ctx context.Context) {
	if !s.transactional() {
		return
	}
	s.txn.gate.Lock()
	defer s.txn.gate.Unlock()
	if s.txn.cl == nil {
		return
	}
	s.endLocked(ctx, false)
	if s.txn.cl == nil {
		return // the last commit found the sink fenced, which closed it
	}
	s.closeTxnLocked(ErrNotLeader)
	s.log.Info("Stopped writing to Kafka")
}

// closeTxnLocked closes the transactional client, failing whatever it
// still holds with cause. gate must be held for writing. It is
// idempotent: a commit that finds the sink fenced closes the client
// (fenced), and Deactivate or Close may then come to close it again.
func (s *Sink) closeTxnLocked(cause error) {
	cl := s.txn.cl
	s.txn.cl = nil
	s.txn.live.Store(nil)
	s.failPending(cause)
	if cl != nil {
		cl.Close() // fails the records it still buffers, through the promise
	}
}

// failPending reports every record of the open transaction failed.
func (s *Sink) failPending(cause error) {
	s.txn.mu.Lock()
	batch := s.txn.pending
	s.txn.pending = nil
	s.txn.mu.Unlock()
	for _, r := range batch {
		s.deliveryFailed(r, cause)
	}
}

// runCommits commits the open transaction every CommitInterval until ctx
// ends.
func (s *Sink) runCommits(ctx context.Context) {
	t := time.NewTicker(s.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.txn.gate.Lock()
		if s.txn.cl != nil {
			s.endLocked(ctx, true)
		}
		s.txn.gate.Unlock()
	}
}

// endLocked ends the open transaction: it flushes, commits, reports the
// committed records delivered, and opens the next transaction if again.
// On failure it aborts, reports the records failed (the relay sends them
// again), and, if the producer was fenced, closes it. gate must be held for
// writing and the sink active.
func (s *Sink) endLocked(ctx context.Context, again bool) {
	s.txn.endingNS.Store(time.Now().UnixNano())
	defer s.txn.endingNS.Store(0)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.txn.abandoned, cancel)()
	cl := s.txn.cl
	flushErr := cl.Flush(ctx)
	s.txn.mu.Lock()
	batch := s.txn.pending
	s.txn.pending = nil
	s.txn.mu.Unlock()
	cause := endTransaction(ctx, cl, flushErr)
	if cause == nil {
		s.metrics.transactions.WithLabelValues("committed").Inc()
		for _, r := range batch {
			s.delivered(r)
		}
		if again {
			if err := cl.BeginTransaction(); err != nil {
				s.fenced(fmt.Errorf("begin a transaction: %w", err), 0)
			}
		}
		return
	}
	s.metrics.transactions.WithLabelValues("aborted").Inc()
	var stop error // why the writer cannot go on, if it cannot
	switch {
	case isFenced(cause), errors.Is(cause, errAbortFailed):
		stop = cause
	case again:
		if berr := cl.BeginTransaction(); berr != nil {
			stop = fmt.Errorf("%w; then begin a transaction: %w", cause, berr)
		}
	}
	if stop != nil {
		// The records go back with the writer's end, logged once by
		// fenced: they are this writer's loss of the lead, not Kafka
		// refusing them.
		failure := fmt.Errorf("%w: %w", ErrFenced, cause)
		for _, r := range batch {
			s.deliveryFailed(r, failure)
		}
		s.fenced(stop, len(batch))
		return
	}
	// The writer goes on: the records are failures (readiness says so),
	// logged here once rather than a line each.
	failure := fmt.Errorf("transaction not committed: %w", cause)
	for _, r := range batch {
		s.deliveryFailedQuietly(r, failure)
	}
	s.log.Warn("Kafka transaction aborted; its records will be sent again", "error", cause, "records", len(batch))
}

// fenced closes the transactional producer after the broker refused it
// (or it cannot go on), and tells the owner. aborted counts the records
// of the transaction that was refused. It logs the writer's end once,
// with the records it leaves uncommitted; they go back to their owners
// failed, each unlogged. gate must be held for writing.
func (s *Sink) fenced(cause error, aborted int) {
	buffered := s.txn.cl.BufferedProduceRecords()
	s.txn.mu.Lock()
	pending := len(s.txn.pending)
	s.txn.mu.Unlock()
	reason := "failed"
	if isFenced(cause) {
		reason = "fenced: another replica's writer took over the transactional ID"
	}
	s.log.Error("This replica's Kafka writer stopped; it writes no more until it leads again", "reason", reason,
		"transactional_id", s.cfg.TransactionalID, "uncommitted_records", int64(aborted+pending)+buffered,
		"aborted_transaction_records", aborted, "error", cause)
	s.metrics.fenced.Inc()
	onFenced := s.txn.onFenced
	s.txn.onFenced = nil
	s.closeTxnLocked(fmt.Errorf("%w: %w", ErrFenced, cause))
	if onFenced != nil {
		go onFenced()
	}
}

// errAbortFailed is wrapped by the error of endTransaction when the
// transaction could not be aborted either: its client cannot begin
// another.
var errAbortFailed = errors.New("the transaction could not be aborted")

// endTransaction ends cl's open transaction, whose records the caller has
// flushed: it commits it when cause (what went wrong with its records) is
// nil, else aborts it, and aborts it too when the commit fails. It returns
// nil when the transaction committed. Otherwise the error wraps cause and
// the failures of ending the transaction: isFenced on it reports whether
// another producer took over the transactional ID, and it wraps
// errAbortFailed when the abort failed too.
func endTransaction(ctx context.Context, cl *kgo.Client, cause error) error {
	if cause == nil {
		err := cl.EndTransaction(ctx, kgo.TryCommit)
		if err == nil {
			return nil
		}
		cause = err
	}
	// The documented way out of a failed commit is an abort.
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		return errors.Join(cause, fmt.Errorf("%w: %w", errAbortFailed, err))
	}
	return cause
}

// isFenced reports whether err says another producer took over the
// transactional ID.
func isFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.InvalidProducerIDMapping) || errors.Is(err, kerr.TransactionalIDAuthorizationFailed)
}
