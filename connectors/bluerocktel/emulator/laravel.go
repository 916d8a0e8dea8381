package emulator

import (
	"bytes"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file reproduces the parts of Laravel the emulator needs byte for
// byte: PHP's json_encode (escaped slashes and non-ASCII, "&" left alone),
// the length-aware paginator's toArray() and its UrlWindow "links".

// kv is one member of an ordered JSON object.
type kv struct {
	K string
	V any
}

// obj is a JSON object that keeps its key order (PHP arrays do).
type obj []kv

// phpJSON encodes v the way PHP's json_encode does with no flags.
// Supported: nil, bool, int, int64, string, []any, []obj, obj.
func phpJSON(v any) []byte {
	var b bytes.Buffer
	writePHP(&b, v)
	return b.Bytes()
}

func writePHP(b *bytes.Buffer, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case int:
		b.WriteString(strconv.Itoa(x))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case string:
		writePHPString(b, x)
	case obj:
		b.WriteByte('{')
		for i, m := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			writePHPString(b, m.K)
			b.WriteByte(':')
			writePHP(b, m.V)
		}
		b.WriteByte('}')
	case []obj:
		b.WriteByte('[')
		for i, o := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			writePHP(b, o)
		}
		b.WriteByte(']')
	case []any:
		b.WriteByte('[')
		for i, o := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			writePHP(b, o)
		}
		b.WriteByte(']')
	default:
		b.WriteString("null")
	}
}

const hexDigits = "0123456789abcdef"

func writePHPString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		s = s[size:]
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '/':
			b.WriteString(`\/`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			writeU(b, r)
		case r < utf8.RuneSelf:
			b.WriteByte(byte(r))
		case r > 0xFFFF:
			r -= 0x10000
			writeU(b, 0xD800+(r>>10))
			writeU(b, 0xDC00+(r&0x3FF))
		default:
			writeU(b, r)
		}
	}
	b.WriteByte('"')
}

func writeU(b *bytes.Buffer, r rune) {
	b.WriteString(`\u`)
	b.WriteByte(hexDigits[(r>>12)&0xF])
	b.WriteByte(hexDigits[(r>>8)&0xF])
	b.WriteByte(hexDigits[(r>>4)&0xF])
	b.WriteByte(hexDigits[r&0xF])
}

// writeJSON answers with status and a PHP-encoded body, as Laravel's
// JsonResponse does.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(status)
	_, _ = w.Write(phpJSON(v))
}

// message answers {"message": msg}.
func message(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, obj{{"message", msg}})
}

// paginator is Laravel's LengthAwarePaginator for one request.
type paginator struct {
	items    []obj
	total    int
	perPage  int
	current  int
	path     string      // absolute URL of the endpoint, without query
	query    [][2]string // the request's query parameters except "page", in order
	lastPage int
}

func newPaginator(items []obj, total, perPage, current int, path string, q [][2]string) *paginator {
	last := (total + perPage - 1) / perPage
	if last < 1 {
		last = 1
	}
	return &paginator{items: items, total: total, perPage: perPage, current: current, path: path, query: q, lastPage: last}
}

// url mirrors AbstractPaginator::url: the request's query plus page, built
// with http_build_query in RFC 3986 mode.
func (p *paginator) url(page int) string {
	if page <= 0 {
		page = 1
	}
	var parts []string
	for _, kv := range p.query {
		parts = append(parts, phpQueryEscape(kv[0])+"="+phpQueryEscape(kv[1]))
	}
	parts = append(parts, "page="+strconv.Itoa(page))
	return p.path + "?" + strings.Join(parts, "&")
}

func phpQueryEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

func (p *paginator) firstItem() any {
	if len(p.items) == 0 {
		return nil
	}
	return (p.current-1)*p.perPage + 1
}

func (p *paginator) lastItem() any {
	if len(p.items) == 0 {
		return nil
	}
	return (p.current-1)*p.perPage + len(p.items)
}

func (p *paginator) nextURL() any {
	if p.lastPage > p.current {
		return p.url(p.current + 1)
	}
	return nil
}

func (p *paginator) prevURL() any {
	if p.current > 1 {
		return p.url(p.current - 1)
	}
	return nil
}

// pageRange is getUrlRange(start, end) as page numbers.
func pageRange(start, end int) []int {
	var out []int
	for i := start; i <= end; i++ {
		out = append(out, i)
	}
	return out
}

// window mirrors UrlWindow::get with onEachSide = 3 and elements():
// a nil slice in the result stands for a "..." gap.
func (p *paginator) window() [][]int {
	const onEachSide = 3
	last, cur := p.lastPage, p.current
	var first, slider, tail []int
	switch {
	case last < onEachSide*2+8:
		first = pageRange(1, last)
	default:
		win := onEachSide + 4
		switch {
		case cur <= win:
			first = pageRange(1, win+onEachSide)
			tail = pageRange(last-1, last)
		case cur > last-win:
			first = pageRange(1, 2)
			tail = pageRange(last-(win+(onEachSide-1)), last)
		default:
			first = pageRange(1, 2)
			slider = pageRange(cur-onEachSide, cur+onEachSide)
			tail = pageRange(last-1, last)
		}
	}
	out := [][]int{first}
	if slider != nil {
		out = append(out, nil, slider)
	}
	if tail != nil {
		out = append(out, nil, tail)
	}
	return out
}

func (p *paginator) links() []obj {
	out := []obj{{{"url", p.prevURL()}, {"label", "&laquo; Previous"}, {"active", false}}}
	for _, el := range p.window() {
		if el == nil {
			out = append(out, obj{{"url", nil}, {"label", "..."}, {"active", false}})
			continue
		}
		for _, n := range el {
			out = append(out, obj{{"url", p.url(n)}, {"label", strconv.Itoa(n)}, {"active", n == p.current}})
		}
	}
	return append(out, obj{{"url", p.nextURL()}, {"label", "Next &raquo;"}, {"active", false}})
}

// toArray is LengthAwarePaginator::toArray, keys in Laravel's order.
func (p *paginator) toArray() obj {
	data := p.items
	if data == nil {
		data = []obj{}
	}
	return obj{
		{"current_page", p.current},
		{"data", data},
		{"first_page_url", p.url(1)},
		{"from", p.firstItem()},
		{"last_page", p.lastPage},
		{"last_page_url", p.url(p.lastPage)},
		{"links", p.links()},
		{"next_page_url", p.nextURL()},
		{"path", p.path},
		{"per_page", p.perPage},
		{"prev_page_url", p.prevURL()},
		{"to", p.lastItem()},
		{"total", p.total},
	}
}

// wantsJSON mirrors Request::expectsJson: an XHR, or an Accept header whose
// first type is JSON.
func wantsJSON(r *http.Request) bool {
	if r.Header.Get("X-Requested-With") == "XMLHttpRequest" {
		return true
	}
	acc := r.Header.Get("Accept")
	if acc == "" {
		return false
	}
	first := strings.TrimSpace(strings.SplitN(acc, ",", 2)[0])
	first = strings.TrimSpace(strings.SplitN(first, ";", 2)[0])
	return strings.Contains(first, "/json") || strings.Contains(first, "+json")
}
