package kafkasink

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dota-data/ingestion-service/internal/kafkatest"
)

func pageWriter(ctx context.Context, t *testing.T, cluster *kafkatest.Cluster, topic, cursors string) (*PageWriter, []byte) {
	t.Helper()
	w, cursor, err := NewPageWriter(ctx, PageConfig{
		Kafka:           Config{Brokers: cluster.Brokers, Topic: topic, ExtraOpts: cluster.Opts},
		TransactionalID: "pages-" + topic,
		CursorTopic:     cursors,
		CursorKey:       "scan",
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w, cursor
}

// page adds ids to the writer's default topic and to other, then commits
// cursor.
func page(ctx context.Context, t *testing.T, w *PageWriter, other string, ids []int64, cursor string) error {
	t.Helper()
	for _, id := range ids {
		k := []byte(strconv.FormatInt(id, 10))
		if err := w.Add(ctx, &kgo.Record{Key: k, Value: k}); err != nil {
			t.Fatal(err)
		}
		if err := w.Add(ctx, &kgo.Record{Topic: other, Key: k, Value: []byte("object " + string(k))}); err != nil {
			t.Fatal(err)
		}
	}
	return w.Commit(ctx, []byte(cursor))
}

func committedKeys(t *testing.T, cluster *kafkatest.Cluster, topic string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, r := range cluster.ReadCommitted(t, topic, 30*time.Second) {
		got[string(r.Key)]++
	}
	return got
}

// TestPageWriterCommitsPagesWithTheirCursor: two pages land in both
// topics with the cursor, all visible to a committed read; a page left
// open when its writer stops is not, and the next writer starts from the
// last committed cursor.
func TestPageWriterCommitsPagesWithTheirCursor(t *testing.T) {
	cluster := kafkatest.Start(t)
	ids, objects := cluster.Topic(t, 3), cluster.Topic(t, 3)
	cursors := "cursors-" + ids
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	w, cursor := pageWriter(ctx, t, cluster, ids, cursors)
	if cursor != nil {
		t.Fatalf("a new cursor topic holds %q", cursor)
	}
	if err := page(ctx, t, w, objects, []int64{1, 2, 3}, "after 3"); err != nil {
		t.Fatal(err)
	}
	if err := page(ctx, t, w, objects, []int64{4, 5}, "after 5"); err != nil {
		t.Fatal(err)
	}
	// A third page, never committed: its writer stops (a crash).
	for _, id := range []int64{6, 7} {
		k := []byte(strconv.FormatInt(id, 10))
		if err := w.Add(ctx, &kgo.Record{Key: k, Value: k}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close(ctx)

	next, cursor := pageWriter(ctx, t, cluster, ids, cursors)
	if string(cursor) != "after 5" {
		t.Fatalf("the next writer resumes from %q, want the last committed cursor", cursor)
	}
	_ = next
	for _, topic := range []string{ids, objects} {
		got := committedKeys(t, cluster, topic)
		if len(got) != 5 || got["6"] != 0 || got["7"] != 0 {
			t.Fatalf("%s: committed keys %v, want 1 to 5 once each", topic, got)
		}
		for k, n := range got {
			if n != 1 {
				t.Fatalf("%s: key %s read %d times", topic, k, n)
			}
		}
	}
}

// TestPageWriterIsFenced: a second writer with the same transactional ID
// fences the first; the first's open page is not committed, and Commit
// says so with ErrFenced.
func TestPageWriterIsFenced(t *testing.T) {
	cluster := kafkatest.Start(t)
	ids, objects := cluster.Topic(t, 1), cluster.Topic(t, 1)
	cursors := "cursors-" + ids
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	old, _ := pageWriter(ctx, t, cluster, ids, cursors)
	if err := page(ctx, t, old, objects, []int64{1}, "after 1"); err != nil {
		t.Fatal(err)
	}
	k := []byte("2")
	if err := old.Add(ctx, &kgo.Record{Key: k, Value: k}); err != nil {
		t.Fatal(err)
	}
	if err := old.cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	next, cursor := pageWriter(ctx, t, cluster, ids, cursors)
	if string(cursor) != "after 1" {
		t.Fatalf("the new writer starts from %q", cursor)
	}
	err := old.Commit(ctx, []byte("after 2"))
	if !errors.Is(err, ErrPageNotCommitted) {
		t.Fatalf("the fenced writer's Commit = %v, want ErrPageNotCommitted", err)
	}
	t.Logf("the fenced writer's Commit: %v (fenced: %v)", err, errors.Is(err, ErrFenced))
	if err := page(ctx, t, next, objects, []int64{3}, "after 3"); err != nil {
		t.Fatal(err)
	}
	if got := committedKeys(t, cluster, ids); len(got) != 2 || got["1"] != 1 || got["3"] != 1 {
		t.Fatalf("committed keys %v, want 1 and 3: the fenced page must not show", got)
	}
}

// TestPageWriterChecksItsTopics: a writer does not start while a topic it
// writes to is missing, and says which and how to fix it; with
// CreateTopic it creates the topic and starts.
func TestPageWriterChecksItsTopics(t *testing.T) {
	cluster := kafkatest.Start(t)
	ids := cluster.Topic(t, 1)
	missing := ids + "-matches"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := PageConfig{
		Kafka:           Config{Brokers: cluster.Brokers, Topic: ids, ExtraOpts: cluster.Opts},
		TransactionalID: "pages-" + ids,
		CursorTopic:     ids + "-cursor",
		CursorKey:       "scan",
		Topics:          []string{missing},
	}
	_, _, err := NewPageWriter(ctx, cfg, slog.New(slog.DiscardHandler))
	if !errors.Is(err, ErrTopicMissing) || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "KAFKA_CREATE_TOPIC") {
		t.Fatalf("a missing matches topic: %v; want ErrTopicMissing naming %s and the setting", err, missing)
	}
	cfg.Kafka.CreateTopic = true
	w, _, err := NewPageWriter(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("with CreateTopic: %v", err)
	}
	defer w.Close(context.Background())
	if err := page(ctx, t, w, missing, []int64{7}, "c1"); err != nil {
		t.Fatal(err)
	}
	if got := committedKeys(t, cluster, missing); got["7"] != 1 {
		t.Fatalf("the created topic holds %v, want match 7 once", got)
	}
}

// TestClosedPageWriterCommitsNoRestOfAPage: Close aborts a page under way;
// what the scan adds after it, and its commit, fail, rather than open a
// new transaction that would commit the rest of the page, and its cursor,
// without the part Close aborted.
func TestClosedPageWriterCommitsNoRestOfAPage(t *testing.T) {
	ctx := context.Background()
	cluster := kafkatest.Start(t)
	topic, cursors := cluster.Topic(t, 1), cluster.Topic(t, 1)
	w, _ := pageWriter(ctx, t, cluster, topic, cursors)
	if err := w.Add(ctx, &kgo.Record{Key: []byte("1"), Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	w.Close(ctx)
	if err := w.Add(ctx, &kgo.Record{Key: []byte("2"), Value: []byte("2")}); !errors.Is(err, ErrPageNotCommitted) {
		t.Errorf("Add after Close: %v, want ErrPageNotCommitted", err)
	}
	if err := w.Commit(ctx, []byte("past 2")); !errors.Is(err, ErrPageNotCommitted) {
		t.Errorf("Commit after Close: %v, want ErrPageNotCommitted", err)
	}
	if got := committedKeys(t, cluster, topic); len(got) != 0 {
		t.Errorf("committed after Close: %v", got)
	}
	if got := committedKeys(t, cluster, cursors); len(got) != 0 {
		t.Errorf("cursor committed after Close: %v", got)
	}
}
