package fallback

import (
	"container/list"
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"github.com/brainhq/brain/services/memory/recall"
)

// Cache keeps the most recent successful recalls by query key, bounded in
// entries, in bytes and in age, least recently stored evicted first. The
// byte bound matters: an orchestrator recall holds 50 episodes, so an
// entry-count bound alone let the cache grow past 150 MB under load.
//
// It never serves what was deleted: deletes purge every answer that could
// hold the deleted episodes, and a recall that read PostgreSQL before a
// delete cannot store its answer after the purge (see Ticket).
type Cache struct {
	max      int
	maxBytes int
	maxAge   time.Duration
	now      func() time.Time
	seed     maphash.Seed

	mu    sync.Mutex
	ll    *list.List // front = newest
	items map[string]*list.Element
	// byNS indexes the entries of each namespace, for purges.
	byNS  map[string]map[*list.Element]struct{}
	bytes int
	// gens count the purges of each stripe of namespaces, and holds are the
	// times until which a stripe stores nothing. Striped by a hash of the
	// namespace so that their memory is fixed whatever the number of
	// namespaces; two namespaces sharing a stripe only cost a missed fill.
	gens  [purgeStripes]uint64
	holds [purgeStripes]time.Time
	// epoch counts the purges of everything; while suspended nothing is
	// stored (see Suspend).
	epoch     uint64
	suspended bool
}

// purgeStripes is the number of namespace stripes purges are counted in.
const purgeStripes = 1024

type cacheEntry struct {
	key     string
	ns      string
	results []recall.Result
	stored  time.Time
	size    int
}

// NewCache returns a cache of at most max entries and about maxBytes of
// answers, none older than maxAge.
func NewCache(max, maxBytes int, maxAge time.Duration, now func() time.Time) *Cache {
	return &Cache{max: max, maxBytes: maxBytes, maxAge: maxAge, now: now, seed: maphash.MakeSeed(),
		ll: list.New(), items: make(map[string]*list.Element), byNS: make(map[string]map[*list.Element]struct{})}
}

// entryOverhead approximates the fixed cost of an entry and of a result
// (struct, pointers, map and list bookkeeping) beyond their strings.
const (
	entryOverhead  = 256
	resultOverhead = 256
)

// sizeOf estimates the memory an answer keeps alive.
func sizeOf(key string, results []recall.Result) int {
	n := entryOverhead + len(key)
	for _, r := range results {
		e := r.Episode
		n += resultOverhead + len(e.ID) + len(e.Namespace) + len(e.SessionID) + len(e.Speaker) + len(e.Content)
		for k, v := range e.Metadata {
			n += len(k) + len(v) + 32
		}
	}
	return n
}

// Ticket is taken before a recall reads PostgreSQL and given back with its
// answer to Put. A delete that ran in between (whatever its outcome) makes
// the ticket stale, so an answer read before the delete is never stored
// after its purge.
type Ticket struct {
	ns     string
	stripe int
	gen    uint64
	epoch  uint64
}

func (c *Cache) stripe(ns string) int {
	return int(maphash.String(c.seed, ns) % purgeStripes)
}

// Ticket returns a ticket for a recall of namespace ns.
func (c *Cache) Ticket(ns string) Ticket {
	s := c.stripe(ns)
	c.mu.Lock()
	defer c.mu.Unlock()
	return Ticket{ns: ns, stripe: s, gen: c.gens[s], epoch: c.epoch}
}

// Put stores results under key (the key of a query of t's namespace) and
// reports whether it did. The slice must not be modified afterwards. An answer larger than
// the whole byte bound is not stored, nor one whose ticket a purge of its
// namespace (or of everything) made stale, nor one of a namespace under a
// purge's hold, nor any while the cache is suspended.
func (c *Cache) Put(t Ticket, key string, results []recall.Result) bool {
	size := sizeOf(key, results)
	if c.max <= 0 || size > c.maxBytes {
		return false
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gens[t.stripe] != t.gen || now.Before(c.holds[t.stripe]) || c.epoch != t.epoch || c.suspended {
		return false
	}
	if el, ok := c.items[key]; ok {
		c.remove(el)
	}
	el := c.ll.PushFront(&cacheEntry{key: key, ns: t.ns, results: results, stored: now, size: size})
	c.items[key] = el
	set := c.byNS[t.ns]
	if set == nil {
		set = make(map[*list.Element]struct{})
		c.byNS[t.ns] = set
	}
	set[el] = struct{}{}
	c.bytes += size
	for c.ll.Len() > c.max || c.bytes > c.maxBytes {
		c.remove(c.ll.Back())
	}
	return true
}

func (c *Cache) remove(el *list.Element) {
	e := el.Value.(*cacheEntry)
	c.ll.Remove(el)
	delete(c.items, e.key)
	if set := c.byNS[e.ns]; set != nil {
		delete(set, el)
		if len(set) == 0 {
			delete(c.byNS, e.ns)
		}
	}
	c.bytes -= e.size
}

// PurgeNamespace drops every answer of ns and makes the tickets of recalls
// of ns in flight stale. For hold from now, no answer of ns is stored: a
// delete whose outcome is unknown may still commit after the purge (its
// statement can run on until PostgreSQL's statement timeout), and a recall
// that read the rows before that commit must not store them. It returns how
// many answers it dropped.
func (c *Cache) PurgeNamespace(ns string, hold time.Duration) int {
	return c.purge(ns, hold, func(*cacheEntry) bool { return true })
}

// PurgeEpisode drops the answers of ns that hold episode id (compared
// case-insensitively, as UUIDs are), and otherwise acts as PurgeNamespace:
// other answers of ns stay, since they never held the episode.
func (c *Cache) PurgeEpisode(ns, id string, hold time.Duration) int {
	return c.purge(ns, hold, func(e *cacheEntry) bool {
		for _, r := range e.results {
			if strings.EqualFold(r.Episode.ID, id) {
				return true
			}
		}
		return false
	})
}

func (c *Cache) purge(ns string, hold time.Duration, drop func(*cacheEntry) bool) int {
	s := c.stripe(ns)
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gens[s]++
	if until := now.Add(hold); until.After(c.holds[s]) {
		c.holds[s] = until
	}
	n := 0
	for el := range c.byNS[ns] {
		if drop(el.Value.(*cacheEntry)) {
			c.remove(el) // deleting the current key while ranging is safe
			n++
		}
	}
	return n
}

// PurgeAll drops every answer and makes every ticket in flight stale; it
// returns how many answers it dropped.
func (c *Cache) PurgeAll() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.purgeAll()
}

func (c *Cache) purgeAll() int {
	n := c.ll.Len()
	c.ll.Init()
	c.items = make(map[string]*list.Element)
	c.byNS = make(map[string]map[*list.Element]struct{})
	c.bytes = 0
	c.epoch++
	return n
}

// Suspend stops the cache storing answers, while the deletes of other
// replicas cannot be heard: an answer stored then could hold an episode
// deleted meanwhile, and no purge would come. What is cached stays and is
// still served.
func (c *Cache) Suspend() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.suspended = true
}

// Resume drops every answer (deletes may have gone unheard before) and
// stores again; it returns how many answers it dropped.
func (c *Cache) Resume() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.suspended = false
	return c.purgeAll()
}

// Bytes is the estimated size of the cached answers.
func (c *Cache) Bytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// Get returns the results stored under key and their age, when present and
// younger than the maximum age. The slice must not be modified.
func (c *Cache) Get(key string) ([]recall.Result, time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, 0, false
	}
	e := el.Value.(*cacheEntry)
	age := c.now().Sub(e.stored)
	if age > c.maxAge {
		c.remove(el)
		return nil, 0, false
	}
	return e.results, age, true
}

// Len is the number of entries.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
