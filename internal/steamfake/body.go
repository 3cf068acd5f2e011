package steamfake

import "strconv"

// The match bodies: each match is generated from its index alone, in the
// shape and field order of odota/core json/sequence_api.json, about 14 KB
// of compact JSON. Only match_id, match_seq_num and start_time depend on
// Options.

// bodySalt separates the body generator from the late-listing choice.
const bodySalt = 0x626f6479 // "body"

// anonymous is the account_id Steam gives a player who hides it.
const anonymous = 4294967295

// rng is a SplitMix64 generator.
type rng uint64

func (r *rng) next() uint64 {
	*r += 0x9e3779b97f4a7c15
	z := uint64(*r)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// n returns a number in [0, k).
func (r *rng) n(k int) int { return int(r.next() % uint64(k)) }

// pick returns an element of from.
func (r *rng) pick(from []int) int { return from[r.n(len(from))] }

// upgrade is one entry of ability_upgrades; its level is its position + 1.
type upgrade struct{ ability, time int }

type player struct {
	accountID                                        int64
	heroID, variant                                  int
	items                                            [6]int
	backpack                                         [3]int
	neutral, neutral2                                int
	kills, deaths, assists, leaver, lastHits, denies int
	gpm, xpm, level, netWorth                        int
	scepter, shard, moonshard                        int
	heroDamage, towerDamage, heroHealing             int
	gold, goldSpent                                  int
	scaledHero, scaledTower, scaledHealing           int
	upgrades                                         [25]upgrade
	nUpgrades                                        int
}

type team struct {
	id   int64
	name string
	logo int64 // above 2^53 and odd, so a float64 cannot hold it
}

// game is the generated part of a match: everything but its IDs and start
// time.
type game struct {
	players                       [10]player // radiant 0-4, dire 5-9
	radiantWin                    bool
	duration                      int
	towerRadiant, towerDire       int
	barracksRadiant, barracksDire int
	cluster, firstBlood           int
	lobbyType, leagueID, gameMode int
	flags                         int
	league                        bool
	teams                         [2]team // radiant, dire; zero unless league
	picksBans                     bool
	bans                          [14]int
	swap                          int // 1 flips the teams of cmTeam
	pickRotation                  int
}

// The picks and bans of captains mode, by order: whether it is a pick, and
// which team makes it, as in json/sequence_api.json (game.swap flips the
// teams).
var (
	cmIsPick = [24]bool{false, false, false, false, false, false, false, true, true, false, false, false, true, true, true, true, true, true, false, false, false, false, true, true}
	cmTeam   = [24]int{1, 0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0}
)

var (
	heroPool = func() []int {
		var h []int
		for id := 1; id <= 138; id++ {
			if id != 24 && (id < 115 || id > 118) && id != 124 && id != 125 && id != 127 && id != 130 && (id < 132 || id > 134) {
				h = append(h, id)
			}
		}
		return append(h, 145)
	}()
	itemPool = []int{1, 11, 29, 36, 40, 41, 43, 46, 48, 50, 60, 63, 65, 73, 77, 90, 92, 96, 98, 100, 102, 104, 108, 110,
		112, 114, 116, 119, 121, 123, 125, 127, 131, 133, 135, 137, 139, 141, 143, 145, 147, 149, 151, 152, 154, 156,
		158, 160, 162, 164, 166, 168, 170, 172, 174, 176, 178, 180, 185, 190, 196, 206, 208, 210, 214, 218, 220, 223,
		225, 226, 229, 231, 232, 235, 236, 242, 247, 249, 250, 252, 254, 256, 259, 263, 267, 273, 277, 534, 596, 598,
		600, 603, 604, 609, 610, 635, 692, 1097, 1107, 1122, 1123, 1466, 1802, 1806, 1808, 4205}
	neutralPool     = []int{71, 828, 840, 1599, 1602, 1603, 1604, 1605, 1606, 1607, 1608, 1609, 1610, 1611}
	enhancementPool = []int{1576, 1577, 1578, 1579, 1580, 1581, 1582, 1583, 1584, 1585, 1586, 1587, 1588, 1589, 1590, 1591, 1592, 1593, 1594}
	clusterPool     = []int{111, 112, 121, 122, 123, 124, 131, 132, 133, 134, 135, 136, 137, 138, 141, 142, 151, 152, 153, 154,
		155, 156, 161, 163, 171, 172, 181, 182, 183, 184, 185, 186, 187, 188, 191, 192, 200, 202, 204, 211, 212, 213,
		221, 222, 223, 224, 225, 227, 231, 232, 236, 251, 261, 271, 272, 273, 274, 291}
	teamNames = []string{"Vitality Warriors", "Moonwalkers", "Ancient Guardians", "Roshan Pit Crew", "Midas Hands",
		"Tidehunters", "Northern Lights", "Ember Foxes", "Radiant Dawn", "Dire Straits", "Void Walkers", "Iron Talons",
		"Storm Spirits", "Night Stalkers", "Crystal Maidens", "Lone Druids"}
)

// generate fills g for match i.
func (g *game) generate(i int64) {
	*g = game{}
	r := rng(splitmix64(uint64(i) ^ bodySalt))
	g.duration = 900 + r.n(2400)
	g.radiantWin = r.n(2) == 0
	g.league = r.n(10) == 0
	switch {
	case g.league:
		g.lobbyType, g.gameMode, g.flags = 1, 2, 5
		g.leagueID = 10000 + r.n(9000)
	case r.n(10) < 7:
		g.lobbyType, g.gameMode, g.flags = 7, 22, r.n(2)
	default:
		g.lobbyType, g.flags = 0, r.n(2)
		g.gameMode = 22
		if r.n(3) == 0 {
			g.gameMode = 23
		}
	}
	if !g.league && r.n(25) == 0 {
		g.gameMode = 2 // captains mode outside a league
	}
	g.picksBans = g.gameMode == 2

	var taken [146]bool
	for p := range g.players {
		pl := &g.players[p]
		for {
			pl.heroID = r.pick(heroPool)
			if !taken[pl.heroID] {
				taken[pl.heroID] = true
				break
			}
		}
		pl.generate(&r, g.duration, !g.league, g.radiantWin == (p < 5))
	}
	if g.picksBans {
		for b := range g.bans {
			for {
				g.bans[b] = r.pick(heroPool)
				if !taken[g.bans[b]] {
					taken[g.bans[b]] = true
					break
				}
			}
		}
		g.swap, g.pickRotation = r.n(2), r.n(5)
	}
	if g.league {
		for t := range g.teams {
			g.teams[t] = team{
				id:   1_000_000 + int64(r.n(9_000_000)),
				name: teamNames[r.n(len(teamNames))],
				logo: 1<<60 | int64(r.next()>>4) | 1,
			}
		}
	}
	win, lose := 1792|r.n(256), r.n(2048)
	winB, loseB := 48|r.n(16), r.n(64)
	if g.radiantWin {
		g.towerRadiant, g.towerDire, g.barracksRadiant, g.barracksDire = win, lose, winB, loseB
	} else {
		g.towerRadiant, g.towerDire, g.barracksRadiant, g.barracksDire = lose, win, loseB, winB
	}
	g.cluster = r.pick(clusterPool)
	g.firstBlood = r.n(300)
}

// generate fills the random part of pl, whose hero is set, for a match of
// the given duration in seconds.
func (pl *player) generate(r *rng, duration int, mayHide, won bool) {
	pl.accountID = 10_000_000 + int64(r.n(1_400_000_000))
	if mayHide && r.n(4) == 0 {
		pl.accountID = anonymous
	}
	pl.variant = 1 + r.n(3)
	for k := range pl.items {
		if r.n(8) != 0 {
			pl.items[k] = r.pick(itemPool)
		}
	}
	for k := range pl.backpack {
		if r.n(2) == 0 {
			pl.backpack[k] = r.pick(itemPool)
		}
	}
	pl.neutral, pl.neutral2 = r.pick(neutralPool), r.pick(enhancementPool)
	pl.kills, pl.deaths, pl.assists = r.n(14), r.n(12), r.n(25)
	if won {
		pl.kills += 2
	}
	if r.n(60) == 0 {
		pl.leaver = 1 + r.n(2)
	}
	pl.gpm, pl.xpm = 200+r.n(600), 250+r.n(650)
	pl.lastHits = (pl.gpm-150)*duration/4000 + r.n(30)
	pl.denies = r.n(20)
	pl.level = min(30, 2+duration/150+r.n(6))
	pl.netWorth = pl.gpm * duration / 60 * (80 + r.n(20)) / 100
	pl.scepter, pl.shard = b2i(r.n(4) == 0), b2i(r.n(3) == 0)
	pl.moonshard = b2i(r.n(30) == 0)
	pl.heroDamage = 2000 + r.n(38000)
	if r.n(3) != 0 {
		pl.towerDamage = r.n(9000)
	}
	if r.n(5) == 0 {
		pl.heroHealing = r.n(6000)
	}
	pl.gold = r.n(3000)
	pl.goldSpent = max(0, pl.netWorth-pl.gold+r.n(3000))
	pl.scaledHero = pl.heroDamage * (55 + r.n(30)) / 100
	pl.scaledTower = pl.towerDamage * (45 + r.n(20)) / 100
	pl.scaledHealing = pl.heroHealing * (40 + r.n(60)) / 100

	pl.nUpgrades = max(10, min(25, pl.level-r.n(4)))
	base := 5000 + pl.heroID*4
	t, step := 200+r.n(250), (duration-250)/pl.nUpgrades
	for k := range pl.nUpgrades {
		a := base + r.n(4)
		switch {
		case k == 9 || k == 14 || k == 19 || k == 24:
			a = 6000 + r.n(3500) // a talent
		case k > 16 && r.n(2) == 0:
			a = 730 // attribute bonus
		}
		pl.upgrades[k] = upgrade{ability: a, time: t}
		t += max(1, step/2+r.n(step+1))
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// num appends key, which holds any punctuation before the value, and v.
func num(b []byte, key string, v int64) []byte {
	return strconv.AppendInt(append(b, key...), v, 10)
}

// appendMatch appends the full object of match i as
// GetMatchHistoryBySequenceNum serves it (not its Replace entry).
func (s *Server) appendMatch(b []byte, i int64) []byte {
	if s.opts.Compact {
		m := s.match(i)
		b = num(b, `{"players":[{"account_id":`, 100_000+i%50_000)
		b = num(b, `,"player_slot":0,"hero_id":`, 1+i%120)
		b = num(b, `},{"account_id":4294967295,"player_slot":128,"hero_id":`, 1+(i+7)%120)
		b = append(b, `}],"radiant_win":`...)
		b = strconv.AppendBool(b, i%2 == 0)
		b = num(b, `,"duration":`, 1200+i*37%2400)
		b = num(b, `,"start_time":`, m.StartTime)
		b = num(b, `,"match_id":`, m.ID)
		b = num(b, `,"match_seq_num":`, m.SeqNum)
		b = num(b, `,"lobby_type":`, i%2*7)
		return append(b, `,"game_mode":22}`...)
	}
	var g game
	g.generate(i)
	m := s.match(i)
	var score [2]int64
	b = append(b, `{"players":[`...)
	for p := range g.players {
		pl := &g.players[p]
		side, slot := p/5, p%5
		score[side] += int64(pl.kills)
		if p > 0 {
			b = append(b, ',')
		}
		b = num(b, `{"account_id":`, pl.accountID)
		b = num(b, `,"player_slot":`, int64(side*128+slot))
		b = num(b, `,"team_number":`, int64(side))
		b = num(b, `,"team_slot":`, int64(slot))
		b = num(b, `,"hero_id":`, int64(pl.heroID))
		b = num(b, `,"hero_variant":`, int64(pl.variant))
		b = num(b, `,"item_0":`, int64(pl.items[0]))
		b = num(b, `,"item_1":`, int64(pl.items[1]))
		b = num(b, `,"item_2":`, int64(pl.items[2]))
		b = num(b, `,"item_3":`, int64(pl.items[3]))
		b = num(b, `,"item_4":`, int64(pl.items[4]))
		b = num(b, `,"item_5":`, int64(pl.items[5]))
		b = num(b, `,"backpack_0":`, int64(pl.backpack[0]))
		b = num(b, `,"backpack_1":`, int64(pl.backpack[1]))
		b = num(b, `,"backpack_2":`, int64(pl.backpack[2]))
		b = num(b, `,"item_neutral":`, int64(pl.neutral))
		b = num(b, `,"item_neutral2":`, int64(pl.neutral2))
		b = num(b, `,"kills":`, int64(pl.kills))
		b = num(b, `,"deaths":`, int64(pl.deaths))
		b = num(b, `,"assists":`, int64(pl.assists))
		b = num(b, `,"leaver_status":`, int64(pl.leaver))
		b = num(b, `,"last_hits":`, int64(pl.lastHits))
		b = num(b, `,"denies":`, int64(pl.denies))
		b = num(b, `,"gold_per_min":`, int64(pl.gpm))
		b = num(b, `,"xp_per_min":`, int64(pl.xpm))
		b = num(b, `,"level":`, int64(pl.level))
		b = num(b, `,"net_worth":`, int64(pl.netWorth))
		b = num(b, `,"aghanims_scepter":`, int64(pl.scepter))
		b = num(b, `,"aghanims_shard":`, int64(pl.shard))
		b = num(b, `,"moonshard":`, int64(pl.moonshard))
		b = num(b, `,"hero_damage":`, int64(pl.heroDamage))
		b = num(b, `,"tower_damage":`, int64(pl.towerDamage))
		b = num(b, `,"hero_healing":`, int64(pl.heroHealing))
		b = num(b, `,"gold":`, int64(pl.gold))
		b = num(b, `,"gold_spent":`, int64(pl.goldSpent))
		b = num(b, `,"scaled_hero_damage":`, int64(pl.scaledHero))
		b = num(b, `,"scaled_tower_damage":`, int64(pl.scaledTower))
		b = num(b, `,"scaled_hero_healing":`, int64(pl.scaledHealing))
		b = append(b, `,"ability_upgrades":[`...)
		for k, u := range pl.upgrades[:pl.nUpgrades] {
			if k > 0 {
				b = append(b, ',')
			}
			b = num(b, `{"ability":`, int64(u.ability))
			b = num(b, `,"time":`, int64(u.time))
			b = num(b, `,"level":`, int64(k+1))
			b = append(b, '}')
		}
		b = append(b, "]}"...)
	}
	b = append(b, `],"radiant_win":`...)
	b = strconv.AppendBool(b, g.radiantWin)
	b = num(b, `,"duration":`, int64(g.duration))
	b = append(b, `,"pre_game_duration":90`...)
	b = num(b, `,"start_time":`, m.StartTime)
	b = num(b, `,"match_id":`, m.ID)
	b = num(b, `,"match_seq_num":`, m.SeqNum)
	b = num(b, `,"tower_status_radiant":`, int64(g.towerRadiant))
	b = num(b, `,"tower_status_dire":`, int64(g.towerDire))
	b = num(b, `,"barracks_status_radiant":`, int64(g.barracksRadiant))
	b = num(b, `,"barracks_status_dire":`, int64(g.barracksDire))
	b = num(b, `,"cluster":`, int64(g.cluster))
	b = num(b, `,"first_blood_time":`, int64(g.firstBlood))
	b = num(b, `,"lobby_type":`, int64(g.lobbyType))
	b = append(b, `,"human_players":10`...)
	b = num(b, `,"leagueid":`, int64(g.leagueID))
	b = num(b, `,"game_mode":`, int64(g.gameMode))
	b = num(b, `,"flags":`, int64(g.flags))
	b = append(b, `,"engine":1`...)
	b = num(b, `,"radiant_score":`, score[0])
	b = num(b, `,"dire_score":`, score[1])
	if g.league {
		for t, side := range [2]string{"radiant", "dire"} {
			tm := g.teams[t]
			b = num(append(append(b, `,"`...), side...), `_team_id":`, tm.id)
			b = append(append(append(append(b, `,"`...), side...), `_name":"`...), tm.name...)
			b = num(append(append(b, `","`...), side...), `_logo":`, tm.logo)
			b = append(append(append(b, `,"`...), side...), `_team_complete":1`...)
		}
		b = num(b, `,"radiant_captain":`, g.players[0].accountID)
		b = num(b, `,"dire_captain":`, g.players[5].accountID)
	}
	if g.picksBans {
		b = append(b, `,"picks_bans":[`...)
		var picked [2]int
		nBans := 0
		for o := range cmIsPick {
			side := cmTeam[o] ^ g.swap
			hero := 0
			if cmIsPick[o] {
				hero = g.players[side*5+(picked[side]+g.pickRotation)%5].heroID
				picked[side]++
			} else {
				hero = g.bans[nBans]
				nBans++
			}
			if o > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"is_pick":`...)
			b = strconv.AppendBool(b, cmIsPick[o])
			b = num(b, `,"hero_id":`, int64(hero))
			b = num(b, `,"team":`, int64(side))
			b = num(b, `,"order":`, int64(o))
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}
