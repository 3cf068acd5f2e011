//go:build race

package match

// raceEnabled: under -race, sync.Pool (which encoding/json's scanner uses)
// drops entries at random, so allocation counts are not meaningful.
const raceEnabled = true
