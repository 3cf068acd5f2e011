package kafkasink

import (
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Config configures a Sink. The zero value of each field takes the default
// named in its comment; Brokers and Topic are required.
type Config struct {
	// Brokers are the seed brokers, host:port each.
	Brokers []string
	// Topic receives one record per match.
	Topic string
	// ClientID identifies the producer to the brokers; default "ingestion-service".
	ClientID string
	// Compression is the batch codec: gzip (default), snappy, lz4, zstd or none.
	Compression string
	// Linger is how long a partition waits for more records before a batch
	// is sent; default 10ms.
	Linger time.Duration
	// BatchMaxBytes caps one record batch, uncompressed; default 16384.
	BatchMaxBytes int32
	// MaxBufferedRecords caps the records held by the client awaiting an
	// acknowledgement; Publish blocks while it is reached. Default 10000.
	MaxBufferedRecords int
	// DeliveryTimeout bounds how long a record may be retried before it is
	// failed, logged and counted. Zero (the default) retries until the
	// Kafka cluster accepts the record or the service shuts down.
	DeliveryTimeout time.Duration
	// ProbeInterval is how often readiness is re-checked with a metadata
	// request for Topic; default 5s.
	ProbeInterval time.Duration
	// ProbeTimeout bounds one readiness probe; default 5s.
	ProbeTimeout time.Duration
	// StallAfter marks the sink not ready when records are buffered and none
	// has been acknowledged for this long; default 15s.
	StallAfter time.Duration
	// Security configures TLS and SASL; the zero value is PLAINTEXT.
	Security Security
	// CreateTopic makes the sink create Topic when it does not exist, with
	// TopicPartitions and TopicReplicationFactor. When false (the default) a
	// missing topic keeps the sink not ready, and records wait for it.
	CreateTopic bool
	// TopicPartitions is the partition count of a created topic; zero or -1
	// means the brokers' default (num.partitions).
	TopicPartitions int32
	// TopicReplicationFactor is the replication factor of a created topic;
	// zero or -1 means the brokers' default (default.replication.factor).
	TopicReplicationFactor int16
	// TransactionalID, when set, makes the sink a fenced single writer for
	// a fleet of replicas: it produces nothing until Activate, then writes
	// through a transactional producer with this ID, committing every
	// CommitInterval, and reports a record delivered only once its
	// transaction commits. Every replica uses the same ID, so the broker
	// refuses the writes of a replica that no longer leads once another
	// has activated. Empty (the default) keeps the idempotent producer.
	TransactionalID string
	// CommitInterval is how often an active transactional sink commits;
	// default 100ms. Records wait up to this long (plus the commit) before
	// consumers reading committed data see them.
	CommitInterval time.Duration
	// ExtraOpts are appended to the client options the sink builds; tests
	// and callers with special needs (TLS, SASL) use them.
	ExtraOpts []kgo.Opt
}

// Defaults of Config.
const (
	DefaultClientID           = "ingestion-service"
	DefaultCompression        = "gzip"
	DefaultLinger             = 10 * time.Millisecond
	DefaultBatchMaxBytes      = 16384
	DefaultMaxBufferedRecords = 10000
	DefaultProbeInterval      = 5 * time.Second
	DefaultProbeTimeout       = 5 * time.Second
	DefaultStallAfter         = 15 * time.Second
	DefaultCommitInterval     = 100 * time.Millisecond
)

func (c Config) withDefaults() Config {
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = DefaultCommitInterval
	}
	if c.Compression == "" {
		c.Compression = DefaultCompression
	}
	if c.Linger == 0 {
		c.Linger = DefaultLinger
	}
	if c.BatchMaxBytes == 0 {
		c.BatchMaxBytes = DefaultBatchMaxBytes
	}
	if c.MaxBufferedRecords == 0 {
		c.MaxBufferedRecords = DefaultMaxBufferedRecords
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = DefaultProbeTimeout
	}
	if c.StallAfter == 0 {
		c.StallAfter = DefaultStallAfter
	}
	return c
}

// Codecs names the values of Compression.
var Codecs = []string{"gzip", "snappy", "lz4", "zstd", "none"}

// Codec returns the franz-go compression codec for a Compression name, or
// an error listing the accepted names.
func Codec(name string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(name) {
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	case "none":
		return kgo.NoCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("unknown compression %q: want %s", name, strings.Join(Codecs, ", "))
}

// ConnOpts returns the options that reach the cluster as the sink does
// (seed brokers, client ID, TLS, SASL), for other clients of the service,
// such as the fleet's group member.
func (c Config) ConnOpts() ([]kgo.Opt, error) {
	c = c.withDefaults()
	if len(c.Brokers) == 0 {
		return nil, fmt.Errorf("no brokers")
	}
	sec, err := c.Security.Opts()
	if err != nil {
		return nil, err
	}
	opts := append([]kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.ClientID(c.ClientID)}, sec...)
	return append(opts, c.ExtraOpts...), nil
}

// clientOpts turns the configuration into franz-go options: the seed's
// producer settings (acks=all, idempotent, gzip, 10 ms linger, 16 KiB
// batches), asynchronous and pipelined.
func (c Config) clientOpts() ([]kgo.Opt, error) {
	if len(c.Brokers) == 0 {
		return nil, fmt.Errorf("no brokers")
	}
	if c.Topic == "" {
		return nil, fmt.Errorf("no topic")
	}
	codec, err := Codec(c.Compression)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.DefaultProduceTopic(c.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotence, the default, requires acks=all
		kgo.ProducerBatchCompression(codec),
		kgo.ProducerLinger(c.Linger),
		kgo.ProducerBatchMaxBytes(c.BatchMaxBytes),
		kgo.MaxBufferedRecords(c.MaxBufferedRecords),
	}
	if c.DeliveryTimeout > 0 {
		// Records for a missing topic fail after a few metadata checks,
		// everything else is retried until DeliveryTimeout.
		opts = append(opts, kgo.RecordDeliveryTimeout(c.DeliveryTimeout), kgo.UnknownTopicRetries(4))
	} else {
		// Retry until accepted: records for a missing topic wait for it to
		// be created, bounded by MaxBufferedRecords.
		opts = append(opts, kgo.UnknownTopicRetries(-1))
	}
	sec, err := c.Security.Opts()
	if err != nil {
		return nil, err
	}
	opts = append(opts, sec...)
	return append(opts, c.ExtraOpts...), nil
}

// TransactionalID returns the transactional ID of the single writer of
// the work that scope names (a fleet and a topic; a Steam scan of a
// topic; one shard of it): "ingestion-service." and scope joined by dots.
// Every transactional ID the service uses is made here, so that two
// kinds of work never share one.
func TransactionalID(scope ...string) string {
	return "ingestion-service." + strings.Join(scope, ".")
}
