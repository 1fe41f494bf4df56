package objfile

import (
	"container/list"
	"fmt"
	"sync"
)

// Key identifies an object across processes: its build-id, or, without
// one, its path, device, inode, size and modification time (a file
// rewritten in place keeps its inode: a cache that outlives one
// diagnosis must not serve its old contents).
type Key struct {
	BuildID     string
	Path        string
	Dev, Ino    uint64
	Size, Mtime int64
}

// Key returns the cache key of f.
func (f *File) Key() Key {
	if f.BuildID != "" {
		return Key{BuildID: f.BuildID}
	}
	return Key{Path: f.Path, Dev: f.Dev, Ino: f.Ino, Size: f.size, Mtime: f.Mtime}
}

func (k Key) String() string {
	if k.BuildID != "" {
		return "build-id " + k.BuildID
	}
	return fmt.Sprintf("%s (dev %d inode %d)", k.Path, k.Dev, k.Ino)
}

// Cache is a bounded LRU of what was loaded from objects (parsed files,
// symbol tables), keyed by Key. It is safe for concurrent use.
type Cache[V any] struct {
	mu    sync.Mutex
	max   int
	ll    *list.List // front: most recently used
	items map[Key]*list.Element
	evict func(V)
}

type entry[V any] struct {
	key Key
	val V
}

// NewCache returns a cache holding at most max values; evict, if not nil,
// is called on each value pushed out.
func NewCache[V any](max int, evict func(V)) *Cache[V] {
	if max < 1 {
		max = 1
	}
	return &Cache[V]{max: max, ll: list.New(), items: map[Key]*list.Element{}, evict: evict}
}

// Get returns the value for k and marks it used.
func (c *Cache[V]) Get(k Key) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*entry[V]).val, true
	}
	var zero V
	return zero, false
}

// Add stores v for k, evicting the least recently used value when full.
func (c *Cache[V]) Add(k Key, v V) {
	c.mu.Lock()
	var evicted []V
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		old := e.Value.(*entry[V])
		if c.evict != nil {
			evicted = append(evicted, old.val)
		}
		old.val = v
	} else {
		c.items[k] = c.ll.PushFront(&entry[V]{k, v})
		for c.ll.Len() > c.max {
			last := c.ll.Back()
			c.ll.Remove(last)
			ent := last.Value.(*entry[V])
			delete(c.items, ent.key)
			evicted = append(evicted, ent.val)
		}
	}
	c.mu.Unlock()
	if c.evict != nil {
		for _, v := range evicted {
			c.evict(v)
		}
	}
}

// Clear removes every value, calling evict on each.
func (c *Cache[V]) Clear() {
	c.mu.Lock()
	var evicted []V
	for e := c.ll.Front(); e != nil; e = e.Next() {
		evicted = append(evicted, e.Value.(*entry[V]).val)
	}
	c.ll.Init()
	clear(c.items)
	c.mu.Unlock()
	if c.evict != nil {
		for _, v := range evicted {
			c.evict(v)
		}
	}
}

// Len returns the number of values held.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
