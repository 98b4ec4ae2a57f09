package metricstore

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

var (
	readyFamily = &Family{Name: "test_node_ready", Help: "Ready.\nSecond line \\ with backslash.", Type: Gauge, LabelNames: []string{"node"}}
	taintFamily = &Family{Name: "test_node_taint", Help: "Taints.", Type: Gauge, LabelNames: []string{"node", "key", "value"}}
	countFamily = &Family{Name: "test_transitions_total", Help: "Transitions.", Type: Counter, LabelNames: []string{"node"}}
)

// TestRenderingMatchesExpfmt renders awkward label values and floats and
// compares with what client_golang and expfmt write for the same series.
func TestRenderingMatchesExpfmt(t *testing.T) {
	values := []float64{0, 1, -1, 0.5, 1e6, 1764501234, 1764501234.125, math.NaN(), math.Inf(1), math.Inf(-1), 1e-9}
	labels := []string{"plain", `quote"d`, `back\slash`, "new\nline", "ünïcode", ""}
	s := NewStore(ConstLabels(map[string]string{"cluster": `prod "eu"`}), readyFamily, taintFamily)
	reg := prometheus.NewPedanticRegistry()
	ready := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: readyFamily.Name, Help: readyFamily.Help, ConstLabels: prometheus.Labels{"cluster": `prod "eu"`}}, readyFamily.LabelNames)
	taint := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: taintFamily.Name, Help: taintFamily.Help, ConstLabels: prometheus.Labels{"cluster": `prod "eu"`}}, taintFamily.LabelNames)
	reg.MustRegister(ready, taint)
	for i, v := range values {
		l := labels[i%len(labels)]
		node := fmt.Sprintf("n%d-%s", i, l)
		s.Update(node, func(b *Builder) {
			b.Add(readyFamily, v, node)
			b.Add(taintFamily, 1, node, l, l+"x")
		})
		ready.WithLabelValues(node).Set(v)
		taint.WithLabelValues(node, l, l+"x").Set(1)
	}
	want, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Gatherer(s).Gather()
	if err != nil {
		t.Fatal(err)
	}
	if a, b := text(t, want), text(t, got); a != b {
		t.Errorf("rendered:\n%s\nclient_golang:\n%s", b, a)
	}
}

func text(t *testing.T, mfs []*dto.MetricFamily) string {
	t.Helper()
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.String()
}

func TestStoreUpdateDelete(t *testing.T) {
	s := NewStore("", readyFamily, taintFamily, countFamily)
	s.Update("a", func(b *Builder) {
		b.Add(readyFamily, 1, "a")
		b.Add(taintFamily, 1, "a", "k1", "v")
		b.Add(taintFamily, 1, "a", "k2", "v")
	})
	s.Update("b", func(b *Builder) { b.Add(readyFamily, 0, "b"); b.Add(countFamily, 3, "b") })
	s.Update("c", func(b *Builder) { b.Add(readyFamily, 1, "c") })
	const want = `
# HELP test_node_ready Ready.\nSecond line \\ with backslash.
# TYPE test_node_ready gauge
test_node_ready{node="a"} 1
test_node_ready{node="b"} 0
# HELP test_node_taint Taints.
# TYPE test_node_taint gauge
test_node_taint{key="k1",node="a",value="v"} 1
test_node_taint{key="k2",node="a",value="v"} 1
# HELP test_transitions_total Transitions.
# TYPE test_transitions_total counter
test_transitions_total{node="b"} 4
`
	// An update replaces every family of the object; one that renders
	// nothing is dropped, like a deletion.
	s.Update("b", func(b *Builder) { b.Add(readyFamily, 0, "b"); b.Add(countFamily, 4, "b") })
	s.Update("c", func(*Builder) {})
	s.Delete("missing")
	if err := testutil.GatherAndCompare(Gatherer(s), strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	s.Delete("a")
	s.Delete("b")
	var buf bytes.Buffer
	if err := s.WriteMetrics(&buf); err != nil || buf.Len() != 0 {
		t.Errorf("empty store wrote %q, %v", buf.String(), err)
	}
	if len(s.Keys()) != 0 || s.Has("a") {
		t.Errorf("keys left: %v", s.Keys())
	}
}

// TestStoreConcurrent updates, deletes and writes from several goroutines;
// run with -race. Every write must parse, with no family twice.
func TestStoreConcurrent(t *testing.T) {
	s := NewStore(`,cluster="c"`, readyFamily, taintFamily)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 500 {
				key := fmt.Sprintf("n%d", (i*7+w)%50)
				if i%5 == 0 {
					s.Delete(key)
					continue
				}
				s.Update(key, func(b *Builder) {
					b.Add(readyFamily, float64(i%2), key)
					if i%3 == 0 {
						b.Add(taintFamily, 1, key, "k", "v")
					}
				})
			}
		})
	}
	wg.Go(func() {
		for range 200 {
			if _, err := Gatherer(s).Gather(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
}

func TestHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_registry_gauge", Help: "From the registry."})
	g.Set(2)
	reg.MustRegister(g)
	s := NewStore("", readyFamily)
	s.Update("a", func(b *Builder) { b.Add(readyFamily, 1, "a") })
	srv := httptest.NewServer(Handler(reg, []Writer{s}, slog.New(slog.DiscardHandler)))
	defer srv.Close()

	for _, enc := range []string{"", "gzip", "gzip;q=0", "br, GZIP ;q=0.5"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		if enc != "" {
			req.Header.Set("Accept-Encoding", enc)
		} else {
			req.Header.Set("Accept-Encoding", "identity")
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		var body io.Reader = resp.Body
		gz := resp.Header.Get("Content-Encoding") == "gzip"
		if wantGz := enc == "gzip" || strings.HasPrefix(enc, "br"); gz != wantGz {
			t.Errorf("Accept-Encoding %q: gzip %v, want %v", enc, gz, wantGz)
		}
		if gz {
			if body, err = gzip.NewReader(resp.Body); err != nil {
				t.Fatal(err)
			}
		}
		b, err := io.ReadAll(body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
			t.Errorf("Content-Type %q", ct)
		}
		for _, want := range []string{"test_registry_gauge 2\n", "test_node_ready{node=\"a\"} 1\n"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("Accept-Encoding %q: body lacks %q:\n%s", enc, want, b)
			}
		}
	}
}

func BenchmarkStoreWrite(b *testing.B) {
	s := NewStore(`,cluster="prod"`, readyFamily, taintFamily, countFamily)
	for i := range 5000 {
		node := fmt.Sprintf("ip-10-0-%d-%d.eu-west-1.compute.internal", i/256, i%256)
		s.Update(node, func(bl *Builder) {
			bl.Add(readyFamily, 1, node)
			bl.Add(taintFamily, 1, node, "node.kubernetes.io/unschedulable", "")
			bl.Add(countFamily, 2, node)
		})
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.WriteMetrics(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// TestInvalidUTF8 keeps a label value of invalid UTF-8 from making the
// whole scrape unparsable: it is written with U+FFFD instead.
func TestInvalidUTF8(t *testing.T) {
	s := NewStore("", readyFamily)
	s.Update("x", func(b *Builder) { b.Add(readyFamily, 1, "bad\xff\xfename") })
	mfs, err := Gatherer(s).Gather()
	if err != nil {
		t.Fatal(err)
	}
	if got := mfs[0].Metric[0].Label[0].GetValue(); got != "bad\uFFFDname" {
		t.Errorf("label value %q", got)
	}
}
