package faultproxy

import "time"

// Scenario is a named fault on the links between a service and Kafka, and
// between it and its source.
type Scenario struct {
	Name string
	// Kafka is set on every broker's proxy; Source on the source's.
	Kafka, Source Fault
	// KafkaUnreachable says Kafka cannot be reached while it holds.
	KafkaUnreachable bool
}

// Scenarios returns the network faults the project's fault tests and its
// soak run, in order: latency of 0.5 to 2 s each way, 10 KB/s, a black
// hole on Kafka alone, a black hole on the source alone, connections reset
// every 10 to 30 KB, and every write cut into 1-byte slices. All but the
// black holes take both links at once.
func Scenarios() []Scenario {
	latency := Fault{Latency: 1250 * time.Millisecond, Jitter: 750 * time.Millisecond}
	bandwidth := Fault{Bandwidth: 10_000}
	resets := Fault{ResetAfter: 20_000}
	slices := Fault{Slice: 1, SliceDelay: 50 * time.Microsecond}
	hole := Fault{Blackhole: true}
	return []Scenario{
		{Name: "latency 0.5-2 s", Kafka: latency, Source: latency},
		{Name: "10 KB/s", Kafka: bandwidth, Source: bandwidth},
		{Name: "Kafka black hole", Kafka: hole, KafkaUnreachable: true},
		{Name: "source black hole", Source: hole},
		{Name: "resets", Kafka: resets, Source: resets},
		{Name: "1-byte slices", Kafka: slices, Source: slices},
	}
}
