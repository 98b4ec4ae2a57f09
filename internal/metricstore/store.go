package metricstore

import (
	"io"
	"sync"
)

// Writer writes metric families in the text exposition format: each family's
// HELP and TYPE lines followed by all its samples, no family twice. The
// exporter's handler calls it on every scrape, after the registry's families.
type Writer interface {
	WriteMetrics(w io.Writer) error
}

// Store keeps the rendered series of a fixed list of families, per object
// (a node, a Deployment...), as kube-state-metrics' metrics_store.MetricsStore
// does. Update replaces an object's series, Delete drops them; WriteMetrics
// writes every family that has a series. Objects are replaced one at a time,
// so an informer relist never shows an empty or half store: client-go 0.37
// delivers it as deletions of the objects gone, then updates of the others
// (processReplacedAllInfo in tools/cache/controller.go; older queues send the
// updates first), and neither order clears what is kept. It is safe for concurrent
// use: updates render outside the lock, and a scrape holds the lock only to
// copy the object list (the rendered bytes are never modified once stored),
// so a slow scraper delays neither the informers nor other scrapes.
type Store struct {
	families    []*Family
	index       map[*Family]int
	headers     [][]byte
	constLabels string
	builders    sync.Pool

	mu      sync.RWMutex
	keys    map[string]int // position in objects
	objects []object
	counts  []int // objects with a series of each family
}

// snapshot is a scrape's copy of a store's object list, pooled: the copy
// lets the scrape write without the lock, and the pool keeps it from
// allocating 64 bytes per object on every scrape.
type snapshot struct {
	objects []object
	counts  []int
}

var snapshots = sync.Pool{New: func() any { return new(snapshot) }}

// object is one object's series: family i's lines are buf[ends[i-1]:ends[i]].
type object struct {
	key  string
	buf  []byte
	ends []uint32
}

func (o *object) family(i int) []byte {
	start := uint32(0)
	if i > 0 {
		start = o.ends[i-1]
	}
	return o.buf[start:o.ends[i]]
}

// NewStore returns an empty store of the families, whose series all end with
// constLabels (as rendered by ConstLabels; "" for none). The families are
// written in the order given.
func NewStore(constLabels string, families ...*Family) *Store {
	s := &Store{
		families: families, index: make(map[*Family]int, len(families)),
		constLabels: constLabels,
		keys:        map[string]int{}, counts: make([]int, len(families)),
	}
	for i, f := range families {
		if _, dup := s.index[f]; dup {
			panic("metricstore: family " + f.Name + " given twice")
		}
		s.index[f] = i
		s.headers = append(s.headers, f.Header())
	}
	s.builders.New = func() any { return &Builder{s: s, lines: make([][]byte, len(families))} }
	return s
}

// Builder renders one object's series for Store.Update.
type Builder struct {
	s     *Store
	lines [][]byte
}

// Add renders one sample of family f with the label values in the order of
// f.LabelNames. It panics when f is not one of the store's families or the
// number of values is wrong: a bug in the collector.
func (b *Builder) Add(f *Family, value float64, values ...string) {
	i, ok := b.s.index[f]
	if !ok {
		panic("metricstore: family " + f.Name + " is not in the store")
	}
	l := AppendSeries(b.lines[i], f, b.s.constLabels, values...)
	l = AppendFloat(l, value)
	b.lines[i] = append(l, '\n')
}

// Update replaces key's series with those render adds; an object that
// renders none is dropped.
func (s *Store) Update(key string, render func(b *Builder)) {
	b := s.builders.Get().(*Builder)
	render(b)
	n := 0
	for _, l := range b.lines {
		n += len(l)
	}
	var o object
	if n > 0 {
		o = object{key: key, buf: make([]byte, 0, n), ends: make([]uint32, len(b.lines))}
		for i, l := range b.lines {
			o.buf = append(o.buf, l...)
			o.ends[i] = uint32(len(o.buf))
			b.lines[i] = l[:0]
		}
	}
	s.builders.Put(b)
	if n == 0 {
		s.Delete(key)
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if at, ok := s.keys[key]; ok {
		s.count(&s.objects[at], -1)
		s.objects[at] = o
	} else {
		s.keys[key] = len(s.objects)
		s.objects = append(s.objects, o)
	}
	s.count(&o, +1)
}

// Delete drops key's series; an unknown key is ignored.
func (s *Store) Delete(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.keys[key]
	if !ok {
		return
	}
	s.count(&s.objects[at], -1)
	last := len(s.objects) - 1
	if at != last {
		s.objects[at] = s.objects[last]
		s.keys[s.objects[at].key] = at
	}
	s.objects[last] = object{}
	s.objects = s.objects[:last]
	delete(s.keys, key)
}

func (s *Store) count(o *object, d int) {
	for i := range s.counts {
		if len(o.family(i)) > 0 {
			s.counts[i] += d
		}
	}
}

// Keys returns the keys of the objects held, in no particular order.
func (s *Store) Keys() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	keys := make([]string, 0, len(s.objects))
	for _, o := range s.objects {
		keys = append(keys, o.key)
	}
	return keys
}

// Has tells whether key has series in the store.
func (s *Store) Has(key string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.keys[key]
	return ok
}

// WriteMetrics writes each family that has a series: its header, then every
// object's lines of it.
func (s *Store) WriteMetrics(w io.Writer) error {
	snap := snapshots.Get().(*snapshot)
	defer func() {
		clear(snap.objects) // drop the references to the rendered bytes
		snap.objects, snap.counts = snap.objects[:0], snap.counts[:0]
		snapshots.Put(snap)
	}()
	s.mu.RLock()
	snap.objects = append(snap.objects, s.objects...)
	snap.counts = append(snap.counts, s.counts...)
	s.mu.RUnlock()
	objects, counts := snap.objects, snap.counts
	for i := range s.families {
		if counts[i] == 0 {
			continue
		}
		if _, err := w.Write(s.headers[i]); err != nil {
			return err
		}
		for j := range objects {
			if l := objects[j].family(i); len(l) > 0 {
				if _, err := w.Write(l); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
