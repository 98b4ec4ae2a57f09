package awsfake

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/smithy-go"
)

// apiError is an error as the service reports it on the wire. The protocol
// layer renders it in the service's own error shape.
type apiError struct {
	Code    string
	Message string
	Status  int
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// ErrorCode, ErrorMessage and ErrorFault make the fixture methods' errors
// smithy.APIErrors, read the same way as the SDK's.
func (e *apiError) ErrorCode() string    { return e.Code }
func (e *apiError) ErrorMessage() string { return e.Message }
func (e *apiError) ErrorFault() smithy.ErrorFault {
	if e.Status >= 500 {
		return smithy.FaultServer
	}
	return smithy.FaultClient
}

func errf(status int, code, format string, args ...any) *apiError {
	return &apiError{Code: code, Message: fmt.Sprintf(format, args...), Status: status}
}

// xmlWriter builds the XML of a response body. Element names are written as
// the services send them; values are escaped.
type xmlWriter struct{ b bytes.Buffer }

func (w *xmlWriter) open(name string)  { w.b.WriteString("<" + name + ">") }
func (w *xmlWriter) close(name string) { w.b.WriteString("</" + name + ">") }

func (w *xmlWriter) leaf(name, v string) {
	w.open(name)
	_ = xml.EscapeText(&w.b, []byte(v))
	w.close(name)
}

// opt writes a leaf only when v is not empty, as AWS omits absent members.
func (w *xmlWriter) opt(name, v string) {
	if v != "" {
		w.leaf(name, v)
	}
}

func (w *xmlWriter) int(name string, v int64) { w.leaf(name, strconv.FormatInt(v, 10)) }
func (w *xmlWriter) bool(name string, v bool) { w.leaf(name, strconv.FormatBool(v)) }

func (w *xmlWriter) time(name string, t time.Time) {
	if !t.IsZero() {
		w.leaf(name, t.UTC().Format("2006-01-02T15:04:05.000Z"))
	}
}

func (w *xmlWriter) elem(name string, body func()) {
	w.open(name)
	body()
	w.close(name)
}

// list writes a wrapped list: <name><item>..</item>..</name>. EC2 names its
// items "item", the query services "member".
func (w *xmlWriter) list(name, item string, n int, body func(i int)) {
	w.open(name)
	for i := range n {
		w.open(item)
		body(i)
		w.close(item)
	}
	w.close(name)
}

// strings writes a wrapped list of plain values.
func (w *xmlWriter) strings(name, item string, vs []string) {
	w.list(name, item, len(vs), func(i int) {
		_ = xml.EscapeText(&w.b, []byte(vs[i]))
	})
}

// ec2Tags writes EC2's tagSet; EC2 omits it when there are no tags.
func (w *xmlWriter) ec2Tags(tags map[string]string) {
	if len(tags) == 0 {
		return
	}
	keys := slices.Sorted(maps.Keys(tags))
	w.list("tagSet", "item", len(keys), func(i int) {
		w.leaf("key", keys[i])
		w.leaf("value", tags[keys[i]])
	})
}

// form holds the parameters of a query-protocol request (EC2 and the AWS
// query services): Action, Version and the flattened input members.
type form url.Values

func (f form) str(k string) string { return url.Values(f).Get(k) }
func (f form) has(k string) bool   { _, ok := f[k]; return ok }

func (f form) int(k string) (int, bool, *apiError) {
	s := f.str(k)
	if s == "" {
		return 0, false, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, false, errf(400, "ValidationError", "Value '%s' for parameter %s is not a valid integer.", s, k)
	}
	return n, true, nil
}

func (f form) bool(k string) bool { return strings.EqualFold(f.str(k), "true") }

// indices returns the list positions present under prefix, sorted: for
// "Filter" the N of every "Filter.N" and "Filter.N.*" key.
func (f form) indices(prefix string) []int {
	seen := map[int]bool{}
	for k := range f {
		rest, ok := strings.CutPrefix(k, prefix+".")
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(rest, ".")
		if n, err := strconv.Atoi(num); err == nil {
			seen[n] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// list reads a list of strings. EC2 flattens lists (InstanceId.1), the query
// services wrap them (AutoScalingGroupNames.member.1): pass the full prefix.
func (f form) list(prefix string) []string {
	var out []string
	for _, i := range f.indices(prefix) {
		if v, ok := f[prefix+"."+strconv.Itoa(i)]; ok && len(v) > 0 {
			out = append(out, v[0])
		}
	}
	return out
}

type filter struct {
	name   string
	values []string
}

// ec2Filters reads EC2's Filter.N.Name / Filter.N.Value.M.
func (f form) ec2Filters() []filter {
	var out []filter
	for _, i := range f.indices("Filter") {
		p := "Filter." + strconv.Itoa(i)
		out = append(out, filter{name: f.str(p + ".Name"), values: f.list(p + ".Value")})
	}
	return out
}

// queryFilters reads the query services' Filters.member.N.Name /
// Filters.member.N.Values.member.M.
func (f form) queryFilters() []filter {
	var out []filter
	for _, i := range f.indices("Filters.member") {
		p := "Filters.member." + strconv.Itoa(i)
		out = append(out, filter{name: f.str(p + ".Name"), values: f.list(p + ".Values.member")})
	}
	return out
}

// filterSet describes the filters one kind of resource supports: named fields
// and, through tags, the tag:<key>, tag-key and tag-value filters.
type filterSet[T any] struct {
	fields map[string]func(T) []string
	tags   func(T) map[string]string
}

func (fs filterSet[T]) validate(filters []filter, code string) *apiError {
	for _, f := range filters {
		if _, ok := fs.fields[f.name]; ok {
			continue
		}
		if fs.tags != nil && (strings.HasPrefix(f.name, "tag:") || f.name == "tag-key" || f.name == "tag-value") {
			continue
		}
		return errf(400, code, "The filter '%s' is invalid", f.name)
	}
	return nil
}

// match reports whether x passes every filter: filters are ANDed, the values
// of one filter ORed, and values may use the * and ? wildcards.
func (fs filterSet[T]) match(x T, filters []filter) bool {
	for _, f := range filters {
		var have []string
		if get, ok := fs.fields[f.name]; ok {
			have = get(x)
		} else {
			tags := fs.tags(x)
			switch {
			case f.name == "tag-key":
				have = slices.Collect(maps.Keys(tags))
			case f.name == "tag-value":
				have = slices.Collect(maps.Values(tags))
			default:
				v, ok := tags[strings.TrimPrefix(f.name, "tag:")]
				if !ok {
					return false
				}
				have = []string{v}
			}
		}
		if !anyGlob(f.values, have) {
			return false
		}
	}
	return true
}

func anyGlob(patterns, values []string) bool {
	for _, p := range patterns {
		for _, v := range values {
			if glob(p, v) {
				return true
			}
		}
	}
	return false
}

// glob matches AWS filter wildcards: * any run of characters, ? one character.
func glob(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for i := len(s); i >= 0; i-- {
				if glob(p[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if len(s) == 0 {
				return false
			}
			p, s = p[1:], s[1:]
		default:
			if len(s) == 0 || p[0] != s[0] {
				return false
			}
			p, s = p[1:], s[1:]
		}
	}
	return len(s) == 0
}

// paginate returns one page of items, which must be sorted by key. The token
// names the last key returned, so a page never repeats or skips an item that
// existed through the whole listing, whatever is added or deleted meanwhile.
func paginate[T any](items []T, key func(T) string, token string, size int, badToken *apiError) ([]T, string, *apiError) {
	start := 0
	if token != "" {
		raw, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || !bytes.HasPrefix(raw, []byte("awsfake:")) {
			return nil, "", badToken
		}
		after := string(raw[len("awsfake:"):])
		start = sort.Search(len(items), func(i int) bool { return key(items[i]) > after })
	}
	if size <= 0 || start+size >= len(items) {
		return items[start:], "", nil
	}
	page := items[start : start+size]
	next := base64.RawURLEncoding.EncodeToString([]byte("awsfake:" + key(page[len(page)-1])))
	return page, next, nil
}

// byKey sorts items by key, the order paginate needs.
func byKey[T any](items []T, key func(T) string) []T {
	slices.SortFunc(items, func(a, b T) int { return strings.Compare(key(a), key(b)) })
	return items
}
