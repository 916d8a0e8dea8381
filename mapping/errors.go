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
	// readFile reads the lookup files the rules name.
	readFile func(string) ([]byte, error)
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
