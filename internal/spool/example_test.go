package spool_test

import (
	"fmt"
	"log"
	"os"
	"time"

	"github.com/dota-data/ingestion-service/internal/spool"
)

func Example() {
	dir, err := os.MkdirTemp("", "spool")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	sp, err := spool.Open(spool.Options{Dir: dir, Sync: spool.SyncPolicy{Interval: time.Second}})
	if err != nil {
		log.Fatal(err)
	}
	for _, id := range []string{"7514723841", "7514723842"} {
		if _, err := sp.Append([]byte(id), time.Now()); err != nil {
			log.Fatal(err)
		}
	}

	buf := make([]byte, 0, 64)
	for {
		p, pos, _, ok, err := sp.Next(buf)
		if err != nil {
			log.Fatal(err)
		}
		if !ok {
			break
		}
		fmt.Printf("record %d: %s\n", pos.Seq, p)
		// Once Kafka has acknowledged the record:
		if err := sp.Commit(pos); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("uncommitted:", sp.Stats().Uncommitted)
	if err := sp.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// record 0: 7514723841
	// record 1: 7514723842
	// uncommitted: 0
}
