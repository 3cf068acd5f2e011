package steamseq

import "context"

// KeyProbe is what one call to Steam with a key found.
type KeyProbe struct {
	// Key is the key's position in Config.Keys, from 1 (keys are never
	// shown).
	Key int
	// Head is the newest match_seq_num Steam reported, when Err is nil.
	Head int64
	// Err is why the call failed, the key redacted.
	Err error
}

// ProbeKeys makes one GetMatchHistory call with each key, in order, as a
// configuration check does: it tells a key Steam refuses, or a Steam that
// does not answer, before the scan spends its budget. It does not pace the
// calls: one each is well within Steam's limit.
func (s *Client) ProbeKeys(ctx context.Context) []KeyProbe {
	var out []KeyProbe
	for _, k := range s.pool.keys {
		head, err := s.fetchHead(ctx, k)
		out = append(out, KeyProbe{Key: k.index + 1, Head: head, Err: err})
	}
	return out
}

// ProbeKeys probes the keys of the Scanner's Client (Client.ProbeKeys).
func (s *Scanner) ProbeKeys(ctx context.Context) []KeyProbe { return s.cl.ProbeKeys(ctx) }
