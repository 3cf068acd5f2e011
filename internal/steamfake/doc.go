// Package steamfake is an in-process fake of the two Steam Web API
// endpoints that list Dota 2 matches, GetMatchHistoryBySequenceNum and
// GetMatchHistory, for tests.
//
// A Server is an http.Handler; Start serves one on loopback for the length
// of a test. It generates a deterministic sequence of matches, has a head
// (the last match that exists) that tests move with Advance, checks the key
// parameter as Steam does, injects faults on request (Fail) and records
// every call it answers (Calls, WaitCalls) so that tests can check paging
// and pacing.
//
// It models what the real endpoint does, as odota/core (the OpenDota
// backend) sees it. Every model but the match bodies is off until an
// Options field or a method turns it on:
//
//   - Bodies: each match is the full object of about 14 KB of compact JSON
//     (ten players with items and ability upgrades, picks and bans, league
//     teams with logo IDs above 2^53), in the shape and field order of
//     odota/core json/sequence_api.json. Body gives the exact bytes served.
//   - Keys and rate limit: the endpoint allows roughly one request every 5
//     seconds per key (odota/core svc/scanner.ts, SCANNER_WAIT; 429s at
//     about 7 calls a minute in odota/core#1072), so OpenDota rotates
//     several keys (STEAM_API_KEY is a comma-separated list there).
//     Options.Keys, Options.RateInterval and Options.RateBurst model this; a
//     refused call is HTTP 429 with an HTML page and no Retry-After header.
//   - Random refusals: some 429s come whatever the pace, even on a key's
//     first call (Nekonyx/next-auth-steam#28). Options.RandomRefusals and
//     Options.RandomRetryAfter model this.
//   - Hidden matches: Valve hides some matches for good, so a page asked for
//     100 often holds 99, and odota/core svc/scanner.ts must not take a short
//     page for the end of the sequence. Options.HiddenEvery models this.
//   - Late listing: some matches appear in the sequence only later, at their
//     original match_seq_num; OpenDota runs a second scanner 50,000 numbers
//     behind to pick them up (odota/core ecosystem.config.js, SCANNER_OFFSET;
//     odota/web#3213). Options.LateFraction and Options.LateBy model this,
//     and LateMatches lists them.
//   - Broken matches: a page can answer {"status":2,"statusDetail":"Error
//     retrieving match data."} for as long as it includes a bad match;
//     odota/core retries the same position, which stalls on a persistent one.
//     Break and Heal model this.
package steamfake
