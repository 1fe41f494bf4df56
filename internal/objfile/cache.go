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
// symbol tables, unwinding tables), keyed by Key: bounded by a count of
// values, and by their bytes when made by NewSizedCache. It is safe for
// concurrent use.
type Cache[V any] struct {
	mu    sync.Mutex
	max   int
	ll    *list.List // front: most recently used
	items map[Key]*list.Element
	evict func(V)

	// size, when set, gives each value's bytes; the values held take at
	// most maxBytes of them, bytes now.
	size            func(V) int64
	maxBytes, bytes int64
}

type entry[V any] struct {
	key  Key
	val  V
	size int64
}

// NewCache returns a cache holding at most max values; evict, if not nil,
// is called on each value pushed out.
func NewCache[V any](max int, evict func(V)) *Cache[V] {
	if max < 1 {
		max = 1
	}
	return &Cache[V]{max: max, ll: list.New(), items: map[Key]*list.Element{}, evict: evict}
}

// NewSizedCache returns a cache holding at most max values of at most
// maxBytes bytes in all, each value's bytes given by size. A value
// bigger than maxBytes alone is not kept.
func NewSizedCache[V any](max int, maxBytes int64, size func(V) int64, evict func(V)) *Cache[V] {
	c := NewCache(max, evict)
	c.size, c.maxBytes = size, maxBytes
	return c
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

// Add stores v for k, evicting the least recently used values when full,
// and reports whether v is kept: a value of a sized cache bigger than
// its bound is not (and is not evicted: the caller keeps it).
func (c *Cache[V]) Add(k Key, v V) bool {
	var size int64
	if c.size != nil {
		size = c.size(v)
	}
	c.mu.Lock()
	var evicted []V
	if c.size != nil && size > c.maxBytes {
		// Kept, it would push out every other value, then itself.
		if e, ok := c.items[k]; ok {
			evicted = append(evicted, c.remove(e))
		}
		c.mu.Unlock()
		c.evictAll(evicted)
		return false
	}
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		old := e.Value.(*entry[V])
		evicted = append(evicted, old.val)
		c.bytes += size - old.size
		old.val, old.size = v, size
	} else {
		c.items[k] = c.ll.PushFront(&entry[V]{k, v, size})
		c.bytes += size
	}
	for c.ll.Len() > c.max || c.bytes > c.maxBytes && c.size != nil {
		evicted = append(evicted, c.remove(c.ll.Back()))
	}
	c.mu.Unlock()
	c.evictAll(evicted)
	return true
}

// remove takes e out of the cache and returns its value; c.mu is held.
func (c *Cache[V]) remove(e *list.Element) V {
	c.ll.Remove(e)
	ent := e.Value.(*entry[V])
	delete(c.items, ent.key)
	c.bytes -= ent.size
	return ent.val
}

func (c *Cache[V]) evictAll(evicted []V) {
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
	c.bytes = 0
	c.mu.Unlock()
	c.evictAll(evicted)
}

// Bytes returns the bytes of the values held, by the size function of
// NewSizedCache (0 for a cache made by NewCache).
func (c *Cache[V]) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// Len returns the number of values held.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
