package fallback

import (
	"container/list"
	"sync"
	"time"

	"github.com/brainhq/brain/services/memory/recall"
)

// Cache keeps the most recent successful recalls by query key, bounded in
// entries, in bytes and in age, least recently stored evicted first. The
// byte bound matters: an orchestrator recall holds 50 episodes, so an
// entry-count bound alone let the cache grow past 150 MB under load.
type Cache struct {
	max      int
	maxBytes int
	maxAge   time.Duration
	now      func() time.Time

	mu    sync.Mutex
	ll    *list.List // front = newest
	items map[string]*list.Element
	bytes int
}

type cacheEntry struct {
	key     string
	results []recall.Result
	stored  time.Time
	size    int
}

// NewCache returns a cache of at most max entries and about maxBytes of
// answers, none older than maxAge.
func NewCache(max, maxBytes int, maxAge time.Duration, now func() time.Time) *Cache {
	return &Cache{max: max, maxBytes: maxBytes, maxAge: maxAge, now: now, ll: list.New(), items: make(map[string]*list.Element)}
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
		n += resultOverhead + len(e.ID) + len(e.Namespace) + len(e.SessionID) + len(e.Content)
		for k, v := range e.Metadata {
			n += len(k) + len(v) + 32
		}
	}
	return n
}

// Put stores results under key. The slice must not be modified afterwards.
// An answer larger than the whole byte bound is not stored.
func (c *Cache) Put(key string, results []recall.Result) {
	size := sizeOf(key, results)
	if c.max <= 0 || size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.remove(el)
	}
	c.items[key] = c.ll.PushFront(&cacheEntry{key: key, results: results, stored: c.now(), size: size})
	c.bytes += size
	for c.ll.Len() > c.max || c.bytes > c.maxBytes {
		c.remove(c.ll.Back())
	}
}

func (c *Cache) remove(el *list.Element) {
	e := el.Value.(*cacheEntry)
	c.ll.Remove(el)
	delete(c.items, e.key)
	c.bytes -= e.size
}

// Bytes is the estimated size of the cached answers.
func (c *Cache) Bytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// Get returns the results stored under key and their age, when present and
// younger than the maximum age.
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
