package kafkasink

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dota-data/ingestion-service/internal/kafkatest"
)

// cursorTxn is one transaction of cursor records, key to value; a nil
// value is a tombstone.
type cursorTxn struct {
	records []kgo.Record
	commit  bool
}

// writeCursors writes each transaction to topic with a transactional
// producer, committing or aborting it.
func writeCursors(ctx context.Context, t *testing.T, cluster *kafkatest.Cluster, topic string, txns []cursorTxn) {
	t.Helper()
	cl := txnClient(t, cluster, topic, "cursors-"+topic)
	defer cl.Close()
	for i, txn := range txns {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatalf("transaction %d: %v", i, err)
		}
		for _, r := range txn.records {
			if err := cl.ProduceSync(ctx, &r).FirstErr(); err != nil {
				t.Fatalf("transaction %d: produce %s: %v", i, r.Key, err)
			}
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(txn.commit)); err != nil {
			t.Fatalf("transaction %d: end: %v", i, err)
		}
	}
}

// txnClient returns a transactional producer to topic with the
// transactional ID id.
func txnClient(t *testing.T, cluster *kafkatest.Cluster, topic, id string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(cluster.Brokers...),
		kgo.DefaultProduceTopic(topic),
		kgo.TransactionalID(id),
	}, cluster.Opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func cursor(key, value string) kgo.Record {
	return kgo.Record{Key: []byte(key), Value: []byte(value)}
}

// TestReadCursors: the last committed value of each key is returned, a
// tombstone deletes its key, an aborted transaction's values do not show,
// match filters the keys, and a missing topic is reported as such.
func TestReadCursors(t *testing.T) {
	cluster := kafkatest.Start(t)
	topic := cluster.Topic(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	writeCursors(ctx, t, cluster, topic, []cursorTxn{
		{commit: true, records: []kgo.Record{
			cursor("scan", "s1"), cursor("rescan", "r1"), cursor("backfill", "b1"), cursor("other", "o1"),
		}},
		{commit: true, records: []kgo.Record{
			cursor("scan", "s2"), {Key: []byte("backfill")}, cursor("empty", ""),
		}},
		{commit: false, records: []kgo.Record{
			cursor("scan", "aborted"), cursor("rescan", "aborted"), cursor("new", "aborted"),
		}},
		{commit: true, records: []kgo.Record{
			cursor("rescan", "r2"),
		}},
	})
	// Wait for the transactions' markers: a broker writes them after it
	// answers the commit.
	cluster.ReadCommitted(t, topic, 30*time.Second)

	cfg := Config{Brokers: cluster.Brokers, ExtraOpts: cluster.Opts}
	tests := []struct {
		name    string
		topic   string
		match   func(string) bool
		want    map[string]string
		wantErr error
	}{
		{
			name:  "every key",
			topic: topic,
			want:  map[string]string{"scan": "s2", "rescan": "r2", "other": "o1", "empty": ""},
		},
		{
			name:  "matched keys",
			topic: topic,
			match: func(k string) bool { return strings.HasSuffix(k, "scan") || k == "backfill" || k == "new" },
			want:  map[string]string{"scan": "s2", "rescan": "r2"},
		},
		{
			name:  "one key",
			topic: topic,
			match: func(k string) bool { return k == "other" },
			want:  map[string]string{"other": "o1"},
		},
		{
			name:  "no key",
			topic: topic,
			match: func(string) bool { return false },
			want:  map[string]string{},
		},
		{
			name:    "missing topic",
			topic:   topic + "-missing",
			wantErr: ErrTopicMissing,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadCursors(ctx, cfg, tt.topic, tt.match)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.topic) {
					t.Fatalf("ReadCursors = %v, %v; want an error wrapping %v naming %s", got, err, tt.wantErr, tt.topic)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.EqualFunc(got, tt.want, func(v []byte, w string) bool { return v != nil && string(v) == w }) {
				t.Fatalf("ReadCursors = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestReadCursorsSeesWhatCommittedBehindAnOpenTransaction: a cursor
// committed after another writer opened its transaction on the same
// partition is read, not the value before it. The read waits for the
// open transaction to end (the last stable offset stays at its first
// record until then), so that a new owner of a unit never resumes from a
// cursor older than the last one committed: that page would be written
// twice. Without the wait the read stops at the last stable offset and
// returns the older cursor.
func TestReadCursorsSeesWhatCommittedBehindAnOpenTransaction(t *testing.T) {
	cluster := kafkatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Another unit's writer opens a transaction and stalls in it (a
	// process paused or killed between its cursor and its commit).
	for _, end := range []struct {
		name   string
		commit bool
		want   map[string]string
	}{
		{"then commits", true, map[string]string{"unit-a": "a1", "unit-b": "b2"}},
		{"then aborts", false, map[string]string{"unit-b": "b2"}},
	} {
		t.Run(end.name, func(t *testing.T) {
			topic := cluster.Topic(t, 1)
			writeCursors(ctx, t, cluster, topic, []cursorTxn{{commit: true, records: []kgo.Record{cursor("unit-b", "b1")}}})
			stalled := txnClient(t, cluster, topic, "stalled-"+topic)
			defer stalled.Close()
			if err := stalled.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			a := cursor("unit-a", "a1")
			if err := stalled.ProduceSync(ctx, &a).FirstErr(); err != nil {
				t.Fatal(err)
			}
			// Unit b commits its next cursor behind it (its marker comes
			// in the broker's time: the read must wait for it too).
			writeCursors(ctx, t, cluster, topic, []cursorTxn{{commit: true, records: []kgo.Record{cursor("unit-b", "b2")}}})
			cfg := Config{Brokers: cluster.Brokers, ExtraOpts: cluster.Opts}
			type read struct {
				got map[string][]byte
				err error
			}
			done := make(chan read, 1)
			go func() {
				got, err := ReadCursors(ctx, cfg, topic, nil)
				done <- read{got, err}
			}()
			select {
			case r := <-done:
				t.Fatalf("ReadCursors returned %q, %v while a transaction before the last cursor was open; want it to wait and read b2", r.got, r.err)
			case <-time.After(time.Second):
			}
			if err := stalled.EndTransaction(ctx, kgo.TransactionEndTry(end.commit)); err != nil {
				t.Fatal(err)
			}
			r := <-done
			if r.err != nil {
				t.Fatal(r.err)
			}
			if !maps.EqualFunc(r.got, end.want, func(v []byte, w string) bool { return string(v) == w }) {
				t.Fatalf("ReadCursors = %q, want %q", r.got, end.want)
			}
		})
	}
}
