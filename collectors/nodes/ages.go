package nodes

import (
	"io"
	"sync"
	"time"

	"github.com/upgradeguard/upgradeguard/internal/metricstore"
)

// ageSeries holds the heartbeat age series of the nodes present whose Lease
// has been renewed: each rendered up to its value when the node first gets
// one, with the time on the exporter's clock its last renewal is taken to
// have happened (heartbeat.go). A scrape writes each line's value as the
// age on its own clock, the one value computed on the scrape path: a value
// rendered at renewal time would be stale by the time it is scraped.
type ageSeries struct {
	family      *metricstore.Family
	constLabels string
	header      []byte

	mu     sync.RWMutex
	index  map[string]int // position in lines
	lines  []ageLine
	keys   []string  // keys[i] is the node of lines[i]
	snaps  sync.Pool // *[]ageLine, a scrape's copy of lines
	chunks sync.Pool // *[]byte, a scrape's output buffer
}

// ageLine is one node's series: prefix is never modified once rendered, so
// a scrape may keep using it after the lock is released.
type ageLine struct {
	prefix []byte
	probe  time.Time
}

func newAgeSeries(f *metricstore.Family, constLabels string) *ageSeries {
	return &ageSeries{family: f, constLabels: constLabels, header: f.Header(), index: map[string]int{}}
}

// set records node name's last renewal at probe, rendering its series the
// first time.
func (a *ageSeries) set(name string, probe time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if i, ok := a.index[name]; ok {
		a.lines[i].probe = probe
		return
	}
	a.index[name] = len(a.lines)
	a.lines = append(a.lines, ageLine{prefix: metricstore.AppendSeries(nil, a.family, a.constLabels, name), probe: probe})
	a.keys = append(a.keys, name)
}

// delete drops node name's series; an unknown name is ignored.
func (a *ageSeries) delete(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	i, ok := a.index[name]
	if !ok {
		return
	}
	last := len(a.lines) - 1
	if i != last {
		a.lines[i], a.keys[i] = a.lines[last], a.keys[last]
		a.index[a.keys[i]] = i
	}
	a.lines[last], a.keys[last] = ageLine{}, ""
	a.lines, a.keys = a.lines[:last], a.keys[:last]
	delete(a.index, name)
}

// chunkSize is how much a scrape renders before writing it out.
const chunkSize = 32 << 10

// write writes the family, if it has a series, with each age at now. The
// lock is held only to copy the lines, so a slow scraper delays neither the
// Lease handler nor other scrapes.
func (a *ageSeries) write(w io.Writer, now time.Time) error {
	snap, _ := a.snaps.Get().(*[]ageLine)
	if snap == nil {
		snap = new([]ageLine)
	}
	defer func() {
		clear(*snap) // drop the prefixes of deleted nodes
		*snap = (*snap)[:0]
		a.snaps.Put(snap)
	}()
	a.mu.RLock()
	*snap = append((*snap)[:0], a.lines...)
	a.mu.RUnlock()
	if len(*snap) == 0 {
		return nil
	}

	buf, _ := a.chunks.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	defer a.chunks.Put(buf)
	b := append((*buf)[:0], a.header...)
	for _, l := range *snap {
		b = append(b, l.prefix...)
		b = metricstore.AppendFloat(b, ageSeconds(l.probe, now))
		b = append(b, '\n')
		if len(b) >= chunkSize {
			if _, err := w.Write(b); err != nil {
				*buf = b[:0]
				return err
			}
			b = b[:0]
		}
	}
	*buf = b[:0]
	if len(b) > 0 {
		_, err := w.Write(b)
		return err
	}
	return nil
}
