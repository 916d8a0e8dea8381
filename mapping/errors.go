package mapping

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem found in a mapping file, or in a record being mapped
// with it. Line is 1-based; it is 0 only when no line applies (for example
// when the file cannot be read at all).
type Error struct {
	// File is the mapping file's name as given to Parse or Load.
	File string
	// Line is the line in File the problem is about.
	Line int
	// Msg says what is wrong and what was expected.
	Msg string
}

// Error formats the problem as "file:line: msg".
func (e Error) Error() string {
	if e.Line <= 0 {
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Errors is every problem found at once, ordered by line. Parse, Load,
// Inbound and Outbound return a *Errors as their error.
type Errors []Error

// Error joins the problems, one "file:line: msg" per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// errs collects problems for one file.
type errs struct {
	file string
	list Errors
}

func (c *errs) add(line int, format string, args ...any) {
	c.list = append(c.list, Error{File: c.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// err returns the collected problems sorted by line, or nil.
func (c *errs) err() error {
	if len(c.list) == 0 {
		return nil
	}
	out := make(Errors, len(c.list))
	copy(out, c.list)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return &out
}

// suggest explains which of valid the admin probably meant by got: a
// "did you mean" when one or a few names are close, else the whole list.
func suggest(got string, valid []string) string {
	if near := nearest(got, valid); len(near) > 0 {
		return "did you mean " + quoteList(near, " or ") + "?"
	}
	return "expected one of: " + strings.Join(valid, ", ")
}

// nearest returns the names in valid that look like a misspelling of got.
func nearest(got string, valid []string) []string {
	g := squash(got)
	if g == "" {
		return nil
	}
	best, bestD := []string(nil), 1<<30
	for _, v := range valid {
		sv := squash(v)
		d := editDistance(g, sv)
		limit := 2
		if l := len(sv) / 3; l > limit {
			limit = l
		}
		if sv == g {
			d = 0
		} else if d > limit {
			continue
		}
		switch {
		case d < bestD:
			best, bestD = []string{v}, d
		case d == bestD:
			best = append(best, v)
		}
	}
	if len(best) > 0 {
		return best
	}
	// No close spelling: offer names that contain, or are contained in,
	// what was written ("email_address" → "email"), when that is specific.
	for _, v := range valid {
		sv := squash(v)
		if len(sv) >= 4 && len(g) >= 4 && (strings.Contains(g, sv) || strings.Contains(sv, g)) {
			best = append(best, v)
		}
	}
	if len(best) > 3 {
		return nil
	}
	return best
}

// squash lowers s and drops separators, so "HotProspect", "hot-prospect"
// and "hot_prospect" compare equal.
func squash(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r == '_' || r == '-' || r == ' ' || r == '.' {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		if a == b {
			return 0
		}
		return 1 << 20
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

func quoteList(xs []string, last string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	if len(q) <= 1 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + last + q[len(q)-1]
}

// show renders a value for an error message, shortened when long.
func show(v any) string {
	var s string
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		s = x
		if len(s) > 60 {
			s = s[:57] + "..."
		}
		return fmt.Sprintf("%q", s)
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	default:
		s = fmt.Sprint(x)
	}
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}
