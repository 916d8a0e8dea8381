package yamlx

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Parse reads data as one YAML document. It returns nil and no problem when
// data holds no document (empty, or only comments), nil and the syntax
// error when it is not YAML. Otherwise it returns the document with every
// key written twice reported and dropped (Dedupe), and a problem for a
// second document (what names the file in that message: "a mapping file").
func Parse(data []byte, what string) (doc *yaml.Node, errs []Error) {
	defer func() {
		// yaml.v3 has panicked on hostile input in the past; a file an
		// admin wrote must never take the daemon down.
		if p := recover(); p != nil {
			doc, errs = nil, []Error{{Line: 1, Msg: fmt.Sprintf("cannot read the file as YAML: %v", p)}}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var d yaml.Node
	if err := dec.Decode(&d); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, []Error{Syntax(err, data)}
	}
	errs = Dedupe(&d)
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		errs = append(errs, Error{Line: max(extra.Line, 1), Msg: fmt.Sprintf("a second YAML document starts here; %s holds exactly one (remove the \"---\" separator)", what)})
	case !errors.Is(err, io.EOF):
		errs = append(errs, Syntax(err, data))
	}
	return &d, errs
}

// parserProblems begin the messages of yaml.v3's parser (as opposed to its
// scanner), whose line numbers count from 0.
var parserProblems = []string{"did not find expected", "found duplicate %", "found incompatible YAML document", "found undefined tag handle"}

// Syntax turns a syntax error of yaml.v3 reading data into a problem at the
// line at fault. yaml.v3 names the line where the enclosing block began
// (counted from 0 in parser errors), or none; the line at fault is the
// first one that the lines before it plus it cannot be read past, with the
// same problem. A tab in that line's indentation gets a hint.
func Syntax(err error, data []byte) Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := lineRe.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	for _, p := range parserProblems {
		if strings.HasPrefix(msg, p) {
			line++
			break
		}
	}
	if bad := firstBadLine(data, msg); bad > 0 {
		line = bad
	}
	line = max(line, 1)
	if l, ok := tabLine(data, line, strings.Contains(msg, "tab character")); ok {
		line = l
		msg += " (indent with spaces, not tabs)"
	}
	return Error{Line: line, Msg: "invalid YAML: " + msg}
}

// problem is yaml.v3's complaint about data ("" when it reads), without the
// line.
func problem(data string) (msg string) {
	defer func() {
		if recover() != nil {
			msg = ""
		}
	}()
	dec := yaml.NewDecoder(strings.NewReader(data))
	for {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			return ""
		}
		if err != nil {
			msg := strings.TrimPrefix(err.Error(), "yaml: ")
			if m := lineRe.FindStringSubmatch(err.Error()); m != nil {
				msg = m[2]
			}
			return msg
		}
	}
}

// firstBadLine returns the smallest n such that the first n lines of data
// fail with problem msg, or 0 when that cannot be told. Lines before the
// fault read, or fail for another reason (a list in [] left open at the
// end of the prefix), so the search looks for msg itself.
func firstBadLine(data []byte, msg string) int {
	if len(data) == 0 || len(data) > 1<<20 {
		return 0
	}
	lines := strings.SplitAfter(string(data), "\n")
	fails := func(n int) bool { return problem(strings.Join(lines[:n], "")) == msg }
	lo, hi := 0, len(lines)
	if !fails(hi) {
		return 0
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// tabLine reports whether line (1-based) of data has a tab in its
// indentation (the blanks and "- " before its content). With any, it looks
// for the first such line from there on, and then from the top (yaml.v3
// said it found a tab).
func tabLine(data []byte, line int, any bool) (int, bool) {
	lines := strings.Split(string(data), "\n")
	tabbed := func(i int) bool {
		l := lines[i]
		indent := l[:len(l)-len(strings.TrimLeft(l, " \t-"))]
		return strings.Contains(indent, "\t")
	}
	if line-1 < len(lines) && tabbed(line-1) {
		return line, true
	}
	if !any {
		return 0, false
	}
	for i := range lines {
		if j := (line - 1 + i) % len(lines); j >= 0 && tabbed(j) {
			return j + 1, true
		}
	}
	return 0, false
}

// Dedupe reports every key written twice in a mapping of n, at any depth
// (as yaml.v3 compares keys: same kind, same text), against the first time
// it is written, and drops all but the last from n: that is the value a
// reader of the file takes, and yaml.v3 would otherwise refuse to decode
// the whole mapping, every key of it then reported missing.
func Dedupe(n *yaml.Node) []Error {
	var out []Error
	dedupe(n, &out)
	return out
}

func dedupe(n *yaml.Node, out *[]Error) {
	if n == nil || n.Kind == yaml.AliasNode {
		return // an alias's node is deduplicated where it is written
	}
	for _, c := range n.Content {
		dedupe(c, out)
	}
	if n.Kind != yaml.MappingNode {
		return
	}
	type id struct {
		kind  yaml.Kind
		value string
	}
	first := map[id]*yaml.Node{}
	last := map[id]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		key := id{k.Kind, k.Value}
		if f, ok := first[key]; ok {
			what := fmt.Sprintf("key %q", k.Value)
			if k.Kind != yaml.ScalarNode {
				what = "this key"
			}
			*out = append(*out, Error{Line: k.Line, Msg: fmt.Sprintf("%s is written twice (first at line %d); keep one", what, f.Line)})
		} else {
			first[key] = k
		}
		last[key] = i
	}
	if len(last) == len(n.Content)/2 {
		return
	}
	kept := n.Content[:0:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		if last[id{n.Content[i].Kind, n.Content[i].Value}] == i {
			kept = append(kept, n.Content[i], n.Content[i+1])
		}
	}
	n.Content = kept
}
