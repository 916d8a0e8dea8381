package yamlx

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// file is a small configuration shape exercising every kind of Go type the
// walk knows.
type file struct {
	Name    string            `yaml:"name"`
	Timeout time.Duration     `yaml:"timeout"`
	Enabled bool              `yaml:"enabled"`
	Size    int               `yaml:"size"`
	Ratio   float64           `yaml:"ratio"`
	Count   uint              `yaml:"count"`
	Tags    []string          `yaml:"tags"`
	Limits  map[string]int    `yaml:"limits"`
	Server  *server           `yaml:"server"`
	Items   []item            `yaml:"items"`
	Extra   any               `yaml:"extra"`
	When    time.Time         `yaml:"when"`
	Level   level             `yaml:"level"`
	Self    selfDecoding      `yaml:"self"`
	Labels  map[string]string `yaml:"labels"`
	Hidden  string            `yaml:"-"`
	Common  `yaml:",inline"`
}

type Common struct {
	Owner string `yaml:"owner"`
}

type server struct {
	Listen string `yaml:"listen"`
	Port   int    `yaml:"port"`
}

type item struct {
	ID    string   `yaml:"id"`
	Steps []string `yaml:"steps"`
}

// level decodes from text and refuses what it does not know.
type level string

func (l *level) UnmarshalText(b []byte) error {
	switch string(b) {
	case "low", "high":
		*l = level(b)
		return nil
	}
	return fmt.Errorf("level %q is not low or high", b)
}

// selfDecoding checks its own keys.
type selfDecoding struct{ A int }

func (s *selfDecoding) UnmarshalYAML(n *yaml.Node) error {
	var m map[string]int
	return n.Decode(&m)
}

var fileType = reflect.TypeOf(file{})

func msgs(es []Error) string {
	var out []string
	for _, e := range es {
		out = append(out, e.Error())
	}
	return strings.Join(out, "\n")
}

func parseOne(t *testing.T, text string) *yaml.Node {
	t.Helper()
	doc, errs := Parse([]byte(text), "a test file")
	if doc == nil || len(errs) > 0 {
		t.Fatalf("Parse: %v %v", doc, msgs(errs))
	}
	return doc
}

func TestParseSyntax(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		// yaml.v3 says line 2, where the mapping began.
		{"tab in indentation", "a:\n  b: 1\n\tc: 2\n", "line 3: invalid YAML: found a tab character that violates indentation (indent with spaces, not tabs)"},
		{"tab before a list item", "a:\n  - b\n\t- c\n", "line 3: invalid YAML: found a tab character that violates indentation (indent with spaces, not tabs)"},
		{"tab as the whole indentation", "a:\n\tb: 2\n", "line 2: invalid YAML: found character that cannot start any token (indent with spaces, not tabs)"},
		{"tab on the first line", "\ta: 1\n", "line 1: invalid YAML: found character that cannot start any token (indent with spaces, not tabs)"},
		// yaml.v3 counts from 0 in parser errors and names the block's start.
		{"misindented key", "a:\n  b: 1\n c: 2\nd: 3\n", "line 3: invalid YAML: did not find expected key"},
		{"key among list items", "key:\n  - one\n  two: 2\n", "line 3: invalid YAML: did not find expected '-' indicator"},
		{"list left open", "a: 1\nb: [1, 2\nc: 3\n", "line 2: invalid YAML: did not find expected ',' or ']'"},
		{"list left open on line 1", "a: [1, 2\n", "line 1: invalid YAML: did not find expected ',' or ']'"},
		// yaml.v3 names the end of the file.
		{"quote left open", "a: \"abc\nb: 1\n", "line 1: invalid YAML: found unexpected end of stream"},
		// yaml.v3 gives no line at all.
		{"colon in a value", "a: 1\nb: c: d\n", "line 2: invalid YAML: mapping values are not allowed in this context"},
		{"unknown anchor", "a: 1\nb: *nope\n", "line 2: invalid YAML: unknown anchor 'nope' referenced"},
		{"bad UTF-8", "a: 1\n\xff: 2\n", "line 2: invalid YAML: invalid leading UTF-8 octet"},
		// A list written across lines before the fault does not mislead.
		{"multi-line list first", "a: [1,\n  2]\nb:\n  c: 1\n d: 2\n", "line 5: invalid YAML: did not find expected key"},
		{"in a second document", "a: 1\n---\nb: [\n", "line 3: invalid YAML: did not find expected node content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, errs := Parse([]byte(tc.text), "a test file")
			if got := msgs(errs); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if strings.Contains(tc.name, "second document") != (doc != nil) {
				t.Errorf("doc = %v", doc)
			}
		})
	}
}

func TestParseDocuments(t *testing.T) {
	for _, text := range []string{"", "# only\n  # comments\n"} {
		if doc, errs := Parse([]byte(text), "a test file"); doc != nil || errs != nil {
			t.Errorf("%q: %v %v", text, doc, errs)
		}
	}
	doc, errs := Parse([]byte("a: 1\n---\nb: 2\n"), "a test file")
	if doc == nil || msgs(errs) != `line 2: a second YAML document starts here; a test file holds exactly one (remove the "---" separator)` {
		t.Errorf("second document: %v %q", doc, msgs(errs))
	}
}

func TestDuplicateKeys(t *testing.T) {
	doc, errs := Parse([]byte("name: a\nserver:\n  port: 1\n  port: 2\n  port: 3\nname: b\n"), "a test file")
	want := `line 4: key "port" is written twice (first at line 3); keep one
line 5: key "port" is written twice (first at line 3); keep one
line 6: key "name" is written twice (first at line 1); keep one`
	if got := msgs(errs); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// The last one is kept, and the rest decodes: yaml.v3 alone refuses
	// the whole mapping and reports the keys twice more.
	var f file
	if errs := Decode(doc, &f, Schema{}); len(errs) > 0 {
		t.Fatalf("Decode after Parse: %s", msgs(errs))
	}
	if f.Name != "b" || f.Server == nil || f.Server.Port != 3 {
		t.Errorf("decoded %+v %+v", f, f.Server)
	}
	// Decode deduplicates a node that did not come from Parse.
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("size: 1\nsize: 2\n"), &n); err != nil {
		t.Fatal(err)
	}
	f = file{}
	if got := msgs(Decode(&n, &f, Schema{})); got != `line 2: key "size" is written twice (first at line 1); keep one` || f.Size != 2 {
		t.Errorf("got %q, size %d", got, f.Size)
	}
}

func TestUnknownKeys(t *testing.T) {
	section := func(t reflect.Type) string {
		if t == reflect.TypeOf(item{}) {
			return "an item"
		}
		return ""
	}
	doc := parseOne(t, `nmae: x
server:
  lisen: ":80"
items:
  - id: a
    stpes: [x]
  - id: b
    colour: red
owner: me
~: empty
`)
	var f file
	got := msgs(Decode(doc, &f, Schema{Section: section, Also: []string{"kind"}}))
	want := `line 1: unknown top-level key "nmae"; did you mean "name"?
line 3: unknown key "lisen" in server; did you mean "listen"?
line 6: unknown key "stpes" in an item; did you mean "steps"?
line 8: unknown key "colour" in an item; expected one of: id, steps
line 10: a key in the top level is empty; expected one of: kind, name, timeout, enabled, size, ratio, count, tags, limits, server, items, extra, when, level, self, labels, owner`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if f.Owner != "me" || len(f.Items) != 2 {
		t.Errorf("what fits is not decoded: %+v", f)
	}
	if k := Keys(fileType); strings.Join(k, ",") != "name,timeout,enabled,size,ratio,count,tags,limits,server,items,extra,when,level,self,labels,owner" {
		t.Errorf("Keys = %v", k)
	}
}

func TestWrongTypes(t *testing.T) {
	doc := parseOne(t, `name: [a, b]
timeout: 30
enabled: maybe
size: many
ratio: high
count: -1
tags: solo
limits: {a: x, b: 2}
server: localhost
items:
  - just text
  - {id: a, steps: {x: 1}}
when: yesterday
level: medium
self: {a: b}
labels: {a: [1]}
`)
	var f file
	got := msgs(Decode(doc, &f, Schema{}))
	want := `line 1: name: found a list; expected a single value (text)
line 2: timeout: 30 is not a duration (expected a number with a unit, e.g. 30s, 5m, 1h)
line 3: enabled: found the text "maybe"; expected true or false
line 4: size: found the text "many"; expected a whole number
line 5: ratio: found the text "high"; expected a number
line 6: count: found the number -1; expected a whole number, 0 or more
line 7: tags: found the text "solo"; expected a list (one - item per line, or [a, b])
line 8: limits: found the text "x"; expected a whole number
line 9: server: found the text "localhost"; expected a section of keys
line 11: items: found the text "just text"; expected a section of keys
line 12: steps: found a section of keys; expected a list (one - item per line, or [a, b])
line 13: when: found the text "yesterday"; expected a date and time (RFC 3339, e.g. 2024-05-01T09:00:00Z)
line 14: level: level "medium" is not low or high
line 15: self: found the text "b"; expected a whole number
line 16: labels: found a list; expected a single value (text)`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// Several values on one line: the one at fault is named.
	doc = parseOne(t, "server: {listen: x, port: x}\n")
	if got := msgs(Decode(doc, &f, Schema{})); got != `line 1: port: found the text "x"; expected a whole number` {
		t.Errorf("flow style: %s", got)
	}
}

func TestDurations(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"30", "timeout: 30 is not a duration (expected a number with a unit, e.g. 30s, 5m, 1h)"},
		{"1d", `timeout: "1d" is not a duration (expected a number with a unit, e.g. 30s, 5m, 1h)`},
		{"1.5", "timeout: 1.5 is not a duration (expected a number with a unit, e.g. 30s, 5m, 1h)"},
		{"[1s]", "timeout: found a list; expected a duration (a number with a unit, e.g. 30s, 5m, 1h)"},
		{"90s", ""},
		{"1h30m", ""},
		{"", ""},
	} {
		var f file
		doc := parseOne(t, "timeout: "+tc.value+"\n")
		got := ""
		if es := Decode(doc, &f, Schema{}); len(es) > 0 {
			got = es[0].Msg
		}
		if got != tc.want {
			t.Errorf("timeout: %s: got %q, want %q", tc.value, got, tc.want)
		}
	}
}

func TestSchemaWording(t *testing.T) {
	s := Schema{Expect: func(key string, t reflect.Type) string {
		if key == "enabled" {
			return "yes as true, no as false"
		}
		return ""
	}}
	doc := parseOne(t, "enabled: perhaps\nsize: big\n")
	var f file
	es := Decode(doc, &f, s)
	if got := msgs(es); got != "line 1: enabled: found the text \"perhaps\"; expected yes as true, no as false\nline 2: size: found the text \"big\"; expected a whole number" {
		t.Errorf("got\n%s", got)
	}
	// The value and its type are there for a caller's own wording.
	if e := es[1]; e.Key != "size" || e.Node == nil || e.Node.Value != "big" || e.Type != reflect.TypeOf(0) {
		t.Errorf("error fields: %+v", e)
	}
}

func TestAliasesAndMerges(t *testing.T) {
	doc := parseOne(t, `anchors: &b {id: x, stpes: 1}
items:
  - *b
  - *b
  - <<: *b
    id: y
  - <<: [1]
`)
	got := msgs(Check(doc, fileType, Schema{}))
	// The anchored mapping is reported once, at its line.
	want := `line 1: unknown top-level key "anchors"; expected one of: name, timeout, enabled, size, ratio, count, tags, limits, server, items, extra, when, level, self, labels, owner
line 1: unknown key "stpes" in item; did you mean "steps"?
line 7: <<: found the number 1; expected a section of keys to merge in (<<: *name) or a list of them`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestSuggest(t *testing.T) {
	valid := []string{"state", "log", "admin", "shutdown_grace", "systems", "flows"}
	for _, tc := range []struct{ got, want string }{
		{"shutdown_grase", `did you mean "shutdown_grace"?`},
		{"ShutdownGrace", `did you mean "shutdown_grace"?`},
		{"flow", `did you mean "flows"?`},
		{"lgo", `did you mean "log"?`},
		{"colour", "expected one of: state, log, admin, shutdown_grace, systems, flows"},
	} {
		if got := Suggest(tc.got, valid); got != tc.want {
			t.Errorf("Suggest(%q) = %q, want %q", tc.got, got, tc.want)
		}
	}
	if got := DidYouMean("lad", []string{"lead", "load", "list"}); got != `did you mean "lead" or "load"?` {
		t.Errorf("DidYouMean = %q", got)
	}
}

func TestFromYAML(t *testing.T) {
	var d time.Duration
	err := yaml.Unmarshal([]byte("30"), &d)
	if es := FromYAML(err); len(es) != 1 || es[0].Msg != "30 is not a duration (expected a number with a unit, e.g. 30s, 5m, 1h)" {
		t.Errorf("FromYAML = %+v", es)
	}
	if es := FromYAML(errors.New("yaml: document contains excessive aliasing")); es[0].Line != 0 || es[0].Msg != "document contains excessive aliasing" {
		t.Errorf("FromYAML = %+v", es)
	}
}
