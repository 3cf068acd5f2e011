// Package spool provides a durable on-disk FIFO of small records: a
// write-ahead log that holds matches while Kafka is slow or down, and
// replays them in order until they are acknowledged.
//
// Open a spool on a directory, Append records on one goroutine, and on
// another read them with Next and acknowledge them with Commit:
//
//	sp, err := spool.Open(spool.Options{Dir: "/var/lib/ingestion/spool"})
//	pos, err := sp.Append(payload, time.Now())    // writer
//	p, pos, at, ok, err := sp.Next(buf)           // reader
//	err = sp.Commit(pos)                          // after Kafka acknowledged pos
//
// Every record reaches the operating system before Append returns, so a
// killed process loses nothing that Append accepted; whether it also
// survives a power cut depends on the SyncPolicy. Delivery is at least
// once: records committed after the last persisted commit cursor are read
// again after a restart.
//
// # Files
//
// Records live in segment files named by the sequence number of their
// first record, zero-padded to 20 digits: 00000000000000000000.seg,
// 00000000000000004711.seg and so on. A segment is appended to until it
// passes Options.SegmentBytes, then a new one starts; a segment is deleted
// once all of its records are committed, unless records are still being
// appended to it. The file "cursor" holds the sequence number of the first
// uncommitted record; it is replaced atomically (written to cursor.tmp,
// then renamed).
//
// All integers are little endian. A record is a 17-byte header followed by
// the payload:
//
//	offset  size  field
//	0       1     magic and format version, 0xD1
//	1       4     payload length in bytes, at most MaxPayload
//	5       8     append time, Unix nanoseconds (int64)
//	13      4     CRC-32C (Castagnoli) of bytes 0-12 and the payload
//	17      n     payload
//
// The cursor file is 16 bytes: the magic "SPC1", the sequence number of the
// first uncommitted record (uint64), and the CRC-32C of the first 12 bytes.
//
// # Recovery
//
// Open reads and checks every record. A damaged region (a torn header, a
// length past the end of the file, a checksum mismatch) is logged with its
// file, offset and size, counted in Stats, and skipped: the newest segment
// is truncated at its last good record so that appends continue cleanly,
// and in an older segment the rest of the file is ignored. A missing or
// damaged cursor makes reading start at the oldest record on disk.
// Corruption never makes Open fail; only I/O errors do.
package spool
