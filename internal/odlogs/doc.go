// Package odlogs reads finished match IDs from OpenDota's public log
// stream: the Server-Sent Events stream of its pipeline's log lines.
//
// New builds a Source from a Config, Run reads until its context ends,
// reconnecting after every failure, and Status tells readiness probes
// whether the stream is being read. Each match found goes to a Handler;
// ParseLine, the per-line parser, can be used on its own.
//
// # The upstream stream
//
// The shapes below are those of the odota/core repository (commit
// 8d0a715, August 2026). A change there shows here as
// ingestion_logs_lines_total{kind="ignored"} rising while "insert" stays
// at zero.
//
// svc/web.ts, route "/logs{/:jobId}": without a job ID it subscribes to the
// Redis channels "api", "parsed", "gcdata" and "queue", answers 200 with
// Content-Type text/event-stream, and writes every message of any of them
// as one event:
//
//	res.write("data: " + message + "\n\n")
//
// Events carry no name, no id and no retry, and the channel is not in the
// event: only the shape of a line says where it came from. It sends no
// keep-alive comments. A message holding a newline arrives cut at it: its
// later lines are not data lines.
//
// svc/util/insert.ts, function telemetry, publishes on the channel named
// by the insert's type ("api", "parsed", "gcdata", ...), without colour:
//
//	[<ISO time>] [<app name>] [insert: <type>] [ended: <relative time>] <match_id>
//
// New matches are inserted by svc/inserter.ts, so the app name of their
// "[insert: api]" lines reads "inserter". That line is published for
// every insert from the Steam API, not only new matches: reconcile and
// repair backfills re-insert old ones, the secondary scanner's late finds
// show there, and an insert retried after a timeout announces the same ID
// again. Repeats are the de-duplication window's to drop; old matches are
// real ones.
//
// The route "/logs/:jobId" ("/logs/api") carries one channel alone; a
// Source whose only channel is ChannelAPI reads it, and falls back to
// "/logs" on a 404.
//
// svc/parser.ts, function log inside parseProcessor, publishes on
// "parsed", wrapped in one colour of the ansi-colors package by outcome
// (success green "\x1b[32m", fail yellow "\x1b[33m", crash red "\x1b[31m",
// skip gray "\x1b[90m", each closed by "\x1b[39m"):
//
//	[<ISO time>] [parser] [<outcome>: <n>ms] [api: <n>ms] [gcdata: <n>ms] [parse: <n>ms] [queued: <relative time>] [pri: <n>] [att: <n>] <match_id> <message>
//
// svc/store/queue.ts, function addReliableJob, publishes queued jobs on
// "queue" in magenta ("\x1b[35m"):
//
//	[<ISO time>] [<app name>] [queue: <name>] [pri: <n>] [att: <n>] <match_id or nothing>
//
// # What is taken
//
// ChannelAPI takes the ID of every "[insert: api]" line (Kind Insert);
// ChannelParsed the ID of every "[parser] [success: ...]" line (Kind
// Parsed). Failed, crashed and skipped parses, inserts of other types and
// queue lines are ignored. A line of a taken kind whose ID is missing, not
// a decimal integer, or not in 1..2^63-1 goes to Handler.Reject with its
// reason; one too long to read whole, with match.TooLarge.
package odlogs
