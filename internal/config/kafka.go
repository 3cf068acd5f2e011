package config

import (
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/dota-data/ingestion-service/internal/kafkasink"
	"github.com/dota-data/ingestion-service/internal/redact"
)

var kafkaVars = []Var{
	{Name: "KAFKA_BOOTSTRAP_SERVERS", Default: "localhost:9092", Help: "Kafka seed brokers, comma-separated `host:port`",
		value: func(c Config) string { return strings.Join(c.Kafka.Brokers, ",") }},
	{Name: "KAFKA_PUBLISH_TOPIC", Default: "match_ids_raw", Help: "topic that receives one record per match",
		value: func(c Config) string { return c.Kafka.Topic }},
	{Name: "KAFKA_COMPRESSION", Default: kafkasink.DefaultCompression, Help: "`gzip`, `snappy`, `lz4`, `zstd` or `none`",
		value: func(c Config) string { return c.Kafka.Compression }},
	{Name: "KAFKA_LINGER", Default: durationText(kafkasink.DefaultLinger), Help: "how long a batch waits for more records; a record that comes after a pause longer than this is sent at once, since none would join it",
		value: func(c Config) string { return durationText(c.Kafka.Linger) }},
	{Name: "KAFKA_BATCH_MAX_BYTES", Default: itoa(kafkasink.DefaultBatchMaxBytes), Help: "largest record batch, uncompressed",
		value: func(c Config) string { return itoa(c.Kafka.BatchMaxBytes) }},
	{Name: "KAFKA_MAX_BUFFERED_RECORDS", Default: itoa(kafkasink.DefaultMaxBufferedRecords), Help: "records handed to the Kafka client and not yet acknowledged; the rest wait in the relay (`BUFFER_MAX_RECORDS`, then the spool)",
		value: func(c Config) string { return itoa(c.Kafka.MaxBufferedRecords) }},
	{Name: "KAFKA_DELIVERY_TIMEOUT", Default: "0", Help: "give up on a record after this long (at least `1s`); `0` retries until shutdown",
		value: func(c Config) string { return durationText(c.Kafka.DeliveryTimeout) }},
	{Name: "KAFKA_CLIENT_ID", Default: "SERVICE_NAME", Help: "client ID sent to the brokers",
		value: func(c Config) string { return c.Kafka.ClientID }},
	{Name: "KAFKA_CREATE_TOPIC", Default: "false", Help: "create the topic at start if it does not exist",
		value: func(c Config) string { return strconv.FormatBool(c.Kafka.CreateTopic) }},
	{Name: "KAFKA_TOPIC_PARTITIONS", Default: "-1", Help: "partitions of a created topic; -1 takes the brokers' num.partitions",
		value: func(c Config) string { return itoa(c.Kafka.TopicPartitions) }},
	{Name: "KAFKA_TOPIC_REPLICATION_FACTOR", Default: "-1", Help: "replication factor of a created topic; -1 takes the brokers' default.replication.factor",
		value: func(c Config) string { return itoa(c.Kafka.TopicReplicationFactor) }},
	{Name: "KAFKA_SECURITY_PROTOCOL", Default: "PLAINTEXT", Help: "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
		value: func(c Config) string { return c.Kafka.Security.Protocol }},
	{Name: "KAFKA_SASL_MECHANISM", Default: "SCRAM-SHA-512", Help: "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* protocols)",
		value: func(c Config) string { return c.Kafka.Security.Mechanism }},
	{Name: "KAFKA_SASL_USERNAME", Help: "SASL user name",
		value: func(c Config) string { return c.Kafka.Security.Username }},
	{Name: "KAFKA_SASL_PASSWORD", Help: "SASL password; never logged", Secret: true,
		value: func(c Config) string { return mask(c.Kafka.Security.Password) }},
	{Name: "KAFKA_TLS_CA_FILE", Help: "PEM file of CAs to trust instead of the system's (SSL, SASL_SSL)",
		value: func(c Config) string { return c.Kafka.Security.CAFile }},
	{Name: "KAFKA_TLS_CERT_FILE", Help: "PEM client certificate, for mutual TLS",
		value: func(c Config) string { return c.Kafka.Security.CertFile }},
	{Name: "KAFKA_TLS_KEY_FILE", Help: "PEM key of the client certificate",
		value: func(c Config) string { return c.Kafka.Security.KeyFile }},
	{Name: "KAFKA_TLS_SERVER_NAME", Help: "host name to verify in the brokers' certificates, if not the one dialled",
		value: func(c Config) string { return c.Kafka.Security.ServerName }},
}

// kafka reads the Kafka sink's settings; the client ID defaults to the
// service's name.
func (r *reader) kafka(serviceName string) kafkasink.Config {
	r.required("KAFKA_BOOTSTRAP_SERVERS")
	r.required("KAFKA_PUBLISH_TOPIC")
	k := kafkasink.Config{
		Brokers:                r.brokers(),
		Topic:                  r.topic("KAFKA_PUBLISH_TOPIC"),
		ClientID:               r.set("KAFKA_CLIENT_ID"),
		Compression:            r.oneOf("KAFKA_COMPRESSION", false, kafkasink.Codecs...),
		Linger:                 r.duration("KAFKA_LINGER", time.Microsecond),
		BatchMaxBytes:          int32(r.integer("KAFKA_BATCH_MAX_BYTES", 512, 1<<30)),
		MaxBufferedRecords:     r.integer("KAFKA_MAX_BUFFERED_RECORDS", 1, 10_000_000),
		DeliveryTimeout:        r.duration("KAFKA_DELIVERY_TIMEOUT", time.Second),
		CreateTopic:            r.boolean("KAFKA_CREATE_TOPIC"),
		TopicPartitions:        int32(r.integer("KAFKA_TOPIC_PARTITIONS", -1, 1_000_000)),
		TopicReplicationFactor: int16(r.integer("KAFKA_TOPIC_REPLICATION_FACTOR", -1, 32767)),
		CommitInterval:         r.positiveDuration("FLEET_COMMIT_INTERVAL", time.Millisecond),
		Security:               r.security(),
	}
	if k.ClientID == "" {
		k.ClientID = serviceName
	}
	if k.TopicPartitions == 0 {
		r.fail("KAFKA_TOPIC_PARTITIONS", "0", "want -1 (the brokers' default) or a positive count")
	}
	if k.TopicReplicationFactor == 0 {
		r.fail("KAFKA_TOPIC_REPLICATION_FACTOR", "0", "want -1 (the brokers' default) or a positive factor")
	}
	return k
}

// brokers reads KAFKA_BOOTSTRAP_SERVERS: host:port pairs, never a URL
// with credentials (which an error would otherwise echo).
func (r *reader) brokers() []string {
	const name = "KAFKA_BOOTSTRAP_SERVERS"
	raw := r.str(name)
	var brokers []string
	for _, b := range strings.Split(raw, ",") {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		if strings.ContainsAny(b, "@/") {
			r.fail(name, redactBrokers(raw), "want host:port pairs, without a scheme or user info (credentials go in KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD)")
		} else if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			r.fail(name, raw, "want comma-separated host:port pairs")
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			r.fail(name, raw, "want comma-separated host:port pairs, the port 1 to 65535")
		}
		brokers = append(brokers, b)
	}
	if len(brokers) == 0 {
		r.fail(name, raw, "want at least one host:port")
	}
	return brokers
}

// topic reads a Kafka topic's name; empty stays empty where the default
// is.
func (r *reader) topic(name string) string {
	t := r.str(name)
	if t != "" && !validTopic(t) {
		r.fail(name, t, "want a Kafka topic name: up to 249 of a-z, A-Z, 0-9, '.', '_' and '-', not . or ..")
	}
	return t
}

// security reads how the sink reaches the brokers: TLS, SASL, both or
// neither, and checks that the files and credentials it needs are there.
func (r *reader) security() kafkasink.Security {
	sec := kafkasink.Security{
		Protocol:   r.oneOf("KAFKA_SECURITY_PROTOCOL", true, kafkasink.Protocols...),
		Mechanism:  strings.ToUpper(r.str("KAFKA_SASL_MECHANISM")),
		Username:   r.get("KAFKA_SASL_USERNAME"),
		Password:   r.get("KAFKA_SASL_PASSWORD"),
		CAFile:     r.file("KAFKA_TLS_CA_FILE"),
		CertFile:   r.file("KAFKA_TLS_CERT_FILE"),
		KeyFile:    r.file("KAFKA_TLS_KEY_FILE"),
		ServerName: r.set("KAFKA_TLS_SERVER_NAME"),
	}
	if !sec.UsesSASL() && !sec.UsesTLS() && sec.Protocol != "PLAINTEXT" {
		return sec // an unknown protocol, refused above
	}
	if sec.UsesSASL() {
		r.oneOf("KAFKA_SASL_MECHANISM", true, kafkasink.Mechanisms...)
		for _, name := range []string{"KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"} {
			if r.get(name) == "" {
				r.fail(name, "", "required with KAFKA_SECURITY_PROTOCOL="+sec.Protocol)
			}
		}
	}
	if !sec.UsesTLS() {
		for _, name := range []string{"KAFKA_TLS_CA_FILE", "KAFKA_TLS_CERT_FILE", "KAFKA_TLS_KEY_FILE"} {
			if r.get(name) != "" {
				r.fail("KAFKA_SECURITY_PROTOCOL", sec.Protocol, name+" is set, so want SSL or SASL_SSL")
			}
		}
		return sec
	}
	if sec.CAFile != "" {
		if _, err := kafkasink.LoadCAs(sec.CAFile); err != nil {
			r.fail("KAFKA_TLS_CA_FILE", sec.CAFile, err.Error())
		}
	}
	switch {
	case sec.CertFile != "" && sec.KeyFile == "":
		r.fail("KAFKA_TLS_KEY_FILE", "", "required with KAFKA_TLS_CERT_FILE")
	case sec.CertFile == "" && sec.KeyFile != "":
		r.fail("KAFKA_TLS_CERT_FILE", "", "required with KAFKA_TLS_KEY_FILE")
	case sec.CertFile != "":
		if _, err := tls.LoadX509KeyPair(sec.CertFile, sec.KeyFile); err != nil {
			r.fail("KAFKA_TLS_CERT_FILE", sec.CertFile, "cannot load the certificate and key: "+err.Error())
		}
	}
	return sec
}

// redactBrokers hides the user info of every item of a broker list.
func redactBrokers(raw string) string {
	items := strings.Split(raw, ",")
	for i, b := range items {
		if at := strings.LastIndexByte(b, '@'); at >= 0 {
			items[i] = redact.Mark + b[at:]
		}
	}
	return strings.Join(items, ",")
}

// validTopic reports whether name is a legal Kafka topic name.
func validTopic(name string) bool {
	if name == "" || len(name) > 249 || name == "." || name == ".." {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
