package fallback

import (
	"container/list"
	"sync"
	"time"

	"github.com/brainhq/brain/services/memory/recall"
)

// Cache keeps the most recent successful recalls by query key, bounded in
// entries and age, least recently stored evicted first.
type Cache struct {
	max    int
	maxAge time.Duration
	now    func() time.Time

	mu    sync.Mutex
	ll    *list.List // front = newest
	items map[string]*list.Element
}

type cacheEntry struct {
	key     string
	results []recall.Result
	stored  time.Time
}

// NewCache returns a cache of at most max entries, none older than maxAge.
func NewCache(max int, maxAge time.Duration, now func() time.Time) *Cache {
	return &Cache{max: max, maxAge: maxAge, now: now, ll: list.New(), items: make(map[string]*list.Element)}
}

// Put stores results under key. The slice must not be modified afterwards.
func (c *Cache) Put(key string, results []recall.Result) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		e := el.Value.(*cacheEntry)
		e.results, e.stored = results, c.now()
		c.ll.MoveToFront(el)
		return
	}
	c.items[key] = c.ll.PushFront(&cacheEntry{key: key, results: results, stored: c.now()})
	for c.ll.Len() > c.max {
		oldest := c.ll.Back()
		c.ll.Remove(oldest)
		delete(c.items, oldest.Value.(*cacheEntry).key)
	}
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
		c.ll.Remove(el)
		delete(c.items, key)
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
