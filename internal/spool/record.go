package spool

import (
	"encoding/binary"
	"hash/crc32"
)

const (
	// MaxPayload is the largest payload Append accepts: 1 MiB.
	MaxPayload = 1 << 20

	recordMagic = 0xD1 // magic and format version 1
	headerSize  = 17   // magic, length, timestamp, checksum
	crcOffset   = 13   // the checksum covers the header bytes before it
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends the encoded record to dst.
func appendRecord(dst, payload []byte, unixNano int64) []byte {
	start := len(dst)
	dst = append(dst, recordMagic)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(unixNano))
	crc := crc32.Update(0, castagnoli, dst[start:start+crcOffset])
	crc = crc32.Update(crc, castagnoli, payload)
	dst = binary.LittleEndian.AppendUint32(dst, crc)
	return append(dst, payload...)
}

// payloadLen returns the payload length declared by header h, which holds
// at least headerSize bytes, and false if the header cannot start a record.
func payloadLen(h []byte) (int, bool) {
	if h[0] != recordMagic {
		return 0, false
	}
	n := binary.LittleEndian.Uint32(h[1:5])
	if n > MaxPayload {
		return 0, false
	}
	return int(n), true
}

// recordTime returns the append time, in Unix nanoseconds, of header h.
func recordTime(h []byte) int64 { return int64(binary.LittleEndian.Uint64(h[5:13])) }

// validRecord reports whether rec, a header and exactly the payload length
// it declares, carries a matching checksum.
func validRecord(rec []byte) bool {
	crc := crc32.Update(0, castagnoli, rec[:crcOffset])
	crc = crc32.Update(crc, castagnoli, rec[headerSize:])
	return crc == binary.LittleEndian.Uint32(rec[crcOffset:headerSize])
}
