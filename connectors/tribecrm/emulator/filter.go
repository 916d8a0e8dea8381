package emulator

// This file holds the emulator's OData v4 $filter / $orderby parser and
// evaluator. It covers what TribeCRM documents and what clients send:
//
//   - comparison: eq ne gt ge lt le; logic: and or not; parentheses;
//   - functions: contains, startswith, endswith (case-insensitive, as Tribe
//     documents), tolower, toupper, trim, length;
//   - literals: 'strings' with ” escapes, true, false, null, numbers, GUIDs
//     (bare, 8-4-4-4-12), DateTimeOffset written bare (2026-01-01T10:00:00Z,
//     with an offset, or with none = UTC), and bare dates (2026-01-01);
//   - property paths through single-valued navigations and complex
//     properties (Organization/Name, Organization/VisitingAddress/City).
//
// `in` and `has` are rejected (Tribe does not support them), as is anything
// else: every error is a *queryError, answered with 400.
//
// Spaces: the emulator decodes the query string with url.PathUnescape, so
// %20 is a space and a literal '+' stays a '+' (it is NOT a space). Tribe is
// reported not to understand '+' as a space (apis.md §1(a), "URL encoding
// matters"), so a client that form-encodes "Name eq 'x'" as
// "Name+eq+'x'" gets a 400 here, as it would in production, and
// "Name eq 'a+b'" compares against the string "a+b".

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// queryError is a client error in a query option ($filter, $orderby, ...):
// the emulator answers 400 with its message.
type queryError struct{ msg string }

func (e *queryError) Error() string { return e.msg }

func qerr(format string, a ...any) error { return &queryError{msg: fmt.Sprintf(format, a...)} }

// kind is the static type of a filter expression.
type kind uint8

const (
	kNull kind = iota
	kString
	kBool
	kNumber
	kDate
	kGuid
	kComplex
	kEntity
)

func (k kind) String() string {
	return [...]string{"null", "Edm.String", "Edm.Boolean", "Edm.Double", "Edm.DateTimeOffset", "Edm.Guid", "complex", "entity"}[k]
}

// guidVal is a GUID value, kept in lower case.
type guidVal string

// ---------------------------------------------------------------- lexer

type tokKind uint8

const (
	tEOF tokKind = iota
	tLParen
	tRParen
	tComma
	tSlash
	tIdent
	tString
	tNumber
	tDate
	tGuid
)

type token struct {
	kind tokKind
	text string // identifier, decoded string, literal text
	pos  int
	num  float64
	date time.Time
}

const maxFilterLen = 32 << 10

func lex(s string) ([]token, error) {
	if len(s) > maxFilterLen {
		return nil, qerr("The filter expression is too long.")
	}
	var toks []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			toks = append(toks, token{kind: tLParen, pos: i})
			i++
		case c == ')':
			toks = append(toks, token{kind: tRParen, pos: i})
			i++
		case c == ',':
			toks = append(toks, token{kind: tComma, pos: i})
			i++
		case c == '/':
			toks = append(toks, token{kind: tSlash, pos: i})
			i++
		case c == '\'':
			start := i
			i++
			var b strings.Builder
			closed := false
			for i < len(s) {
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					closed = true
					break
				}
				b.WriteByte(s[i])
				i++
			}
			if !closed {
				return nil, qerr("Unterminated string literal at position %d.", start)
			}
			toks = append(toks, token{kind: tString, text: b.String(), pos: start})
		case i+36 <= len(s) && isGUID(s[i:i+36]) && (i+36 == len(s) || !isIdentByte(s[i+36])):
			toks = append(toks, token{kind: tGuid, text: strings.ToLower(s[i : i+36]), pos: i})
			i += 36
		case isDigit(c) || (c == '-' && i+1 < len(s) && isDigit(s[i+1])):
			start := i
			i++
			for i < len(s) && strings.IndexByte("0123456789-:.TZ+eE", s[i]) >= 0 {
				i++
			}
			lit := s[start:i]
			if t, ok := parseDateLiteral(lit); ok {
				toks = append(toks, token{kind: tDate, text: lit, pos: start, date: t})
				continue
			}
			f, err := strconv.ParseFloat(lit, 64)
			if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
				return nil, qerr("Invalid literal '%s' at position %d.", lit, start)
			}
			toks = append(toks, token{kind: tNumber, text: lit, pos: start, num: f})
		case isIdentStart(c):
			start := i
			for i < len(s) && isIdentByte(s[i]) {
				i++
			}
			toks = append(toks, token{kind: tIdent, text: s[start:i], pos: start})
		default:
			return nil, qerr("Unexpected character '%c' at position %d.", c, i)
		}
	}
	toks = append(toks, token{kind: tEOF, pos: len(s)})
	return toks, nil
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
func isIdentByte(c byte) bool  { return isIdentStart(c) || isDigit(c) }

// parseDateLiteral parses a bare OData DateTimeOffset (offset optional,
// meaning UTC when absent) or Date literal.
func parseDateLiteral(s string) (time.Time, bool) {
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04Z07:00", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// ---------------------------------------------------------------- AST

type node interface{ isNode() }

type litNode struct {
	k kind
	v any // nil, string, bool, float64, time.Time, guidVal
}

type pathNode struct {
	segs []string
	k    kind // set by bind
}

type notNode struct{ x node }

type binNode struct {
	op   string // eq ne gt ge lt le and or
	l, r node
}

type callNode struct {
	fn   string
	args []node
}

func (litNode) isNode()   {}
func (*pathNode) isNode() {}
func (notNode) isNode()   {}
func (binNode) isNode()   {}
func (callNode) isNode()  {}

// ---------------------------------------------------------------- parser

const maxDepth = 64

type parser struct {
	toks  []token
	i     int
	depth int
}

// parseFilter parses a $filter expression (without binding it to a type).
func parseFilter(s string) (node, error) {
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	if len(toks) == 1 {
		return nil, qerr("The filter expression is empty.")
	}
	p := &parser{toks: toks}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, qerr("Unexpected '%s' at position %d.", p.describe(t), t.pos)
	}
	return n, nil
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if p.i < len(p.toks)-1 {
		p.i++
	}
	return t
}

func (p *parser) describe(t token) string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tLParen:
		return "("
	case tRParen:
		return ")"
	case tComma:
		return ","
	case tSlash:
		return "/"
	case tString:
		return "'" + t.text + "'"
	}
	return t.text
}

func (p *parser) isWord(w string) bool {
	t := p.peek()
	return t.kind == tIdent && t.text == w
}

func (p *parser) or() (node, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.isWord("or") {
		p.next()
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = binNode{op: "or", l: l, r: r}
	}
	return l, nil
}

func (p *parser) and() (node, error) {
	l, err := p.cmp()
	if err != nil {
		return nil, err
	}
	for p.isWord("and") {
		p.next()
		r, err := p.cmp()
		if err != nil {
			return nil, err
		}
		l = binNode{op: "and", l: l, r: r}
	}
	return l, nil
}

var cmpOps = map[string]bool{"eq": true, "ne": true, "gt": true, "ge": true, "lt": true, "le": true}

func (p *parser) cmp() (node, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	if t.kind == tIdent {
		switch {
		case cmpOps[t.text]:
			p.next()
			r, err := p.unary()
			if err != nil {
				return nil, err
			}
			return binNode{op: t.text, l: l, r: r}, nil
		case t.text == "in" || t.text == "has":
			return nil, qerr("The operator '%s' is not supported.", t.text)
		case t.text == "add" || t.text == "sub" || t.text == "mul" || t.text == "div" || t.text == "mod":
			return nil, qerr("The arithmetic operator '%s' is not supported.", t.text)
		}
	}
	return l, nil
}

func (p *parser) unary() (node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, qerr("The filter expression is nested too deeply.")
	}
	if p.isWord("not") {
		p.next()
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return notNode{x: x}, nil
	}
	return p.primary()
}

func (p *parser) primary() (node, error) {
	t := p.next()
	switch t.kind {
	case tLParen:
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tRParen {
			return nil, qerr("Expected ')' at position %d, found '%s'.", c.pos, p.describe(c))
		}
		return n, nil
	case tString:
		return litNode{k: kString, v: t.text}, nil
	case tNumber:
		return litNode{k: kNumber, v: t.num}, nil
	case tDate:
		return litNode{k: kDate, v: t.date}, nil
	case tGuid:
		return litNode{k: kGuid, v: guidVal(t.text)}, nil
	case tIdent:
		switch t.text {
		case "true":
			return litNode{k: kBool, v: true}, nil
		case "false":
			return litNode{k: kBool, v: false}, nil
		case "null":
			return litNode{k: kNull}, nil
		case "and", "or", "not", "eq", "ne", "gt", "ge", "lt", "le", "in", "has":
			return nil, qerr("Unexpected '%s' at position %d.", t.text, t.pos)
		}
		if p.peek().kind == tLParen {
			return p.call(t)
		}
		segs := []string{t.text}
		for p.peek().kind == tSlash {
			p.next()
			s := p.next()
			if s.kind != tIdent {
				return nil, qerr("Expected a property name after '/' at position %d.", s.pos)
			}
			segs = append(segs, s.text)
		}
		return &pathNode{segs: segs}, nil
	}
	return nil, qerr("Unexpected '%s' at position %d.", p.describe(t), t.pos)
}

var funcArity = map[string]int{
	"contains": 2, "startswith": 2, "endswith": 2,
	"tolower": 1, "toupper": 1, "trim": 1, "length": 1,
}

func (p *parser) call(name token) (node, error) {
	n, ok := funcArity[name.text]
	if !ok {
		return nil, qerr("The function '%s' is not supported.", name.text)
	}
	p.next() // (
	var args []node
	if p.peek().kind != tRParen {
		for {
			a, err := p.or()
			if err != nil {
				return nil, err
			}
			args = append(args, a)
			if p.peek().kind != tComma {
				break
			}
			p.next()
		}
	}
	if c := p.next(); c.kind != tRParen {
		return nil, qerr("Expected ')' at position %d, found '%s'.", c.pos, p.describe(c))
	}
	if len(args) != n {
		return nil, qerr("The function '%s' takes %d argument(s), got %d.", name.text, n, len(args))
	}
	return callNode{fn: name.text, args: args}, nil
}

// ---------------------------------------------------------------- binding

// bind resolves property paths against t and type-checks the tree. It
// returns the expression's type.
func bind(n node, t *typeDef) (kind, error) {
	switch n := n.(type) {
	case litNode:
		return n.k, nil
	case *pathNode:
		k, err := t.resolve(n.segs)
		if err != nil {
			return 0, err
		}
		n.k = k
		return k, nil
	case notNode:
		k, err := bind(n.x, t)
		if err != nil {
			return 0, err
		}
		if k != kBool && k != kNull {
			return 0, qerr("The operand of 'not' must be Edm.Boolean, not %s.", k)
		}
		return kBool, nil
	case binNode:
		lk, err := bind(n.l, t)
		if err != nil {
			return 0, err
		}
		rk, err := bind(n.r, t)
		if err != nil {
			return 0, err
		}
		switch n.op {
		case "and", "or":
			if (lk != kBool && lk != kNull) || (rk != kBool && rk != kNull) {
				return 0, qerr("The operands of '%s' must be Edm.Boolean.", n.op)
			}
			return kBool, nil
		}
		if lk != rk && lk != kNull && rk != kNull {
			return 0, qerr("Incompatible types %s and %s for operator '%s'.", lk, rk, n.op)
		}
		if (lk == kEntity || lk == kComplex || rk == kEntity || rk == kComplex) && n.op != "eq" && n.op != "ne" {
			return 0, qerr("Operator '%s' cannot compare structured values.", n.op)
		}
		if (lk == kEntity || lk == kComplex) && rk != kNull || (rk == kEntity || rk == kComplex) && lk != kNull {
			return 0, qerr("Structured values can only be compared with null.")
		}
		return kBool, nil
	case callNode:
		for _, a := range n.args {
			k, err := bind(a, t)
			if err != nil {
				return 0, err
			}
			if k != kString && k != kNull {
				return 0, qerr("The function '%s' expects Edm.String arguments, not %s.", n.fn, k)
			}
		}
		switch n.fn {
		case "tolower", "toupper", "trim":
			return kString, nil
		case "length":
			return kNumber, nil
		}
		return kBool, nil
	}
	return 0, qerr("invalid expression")
}

// ---------------------------------------------------------------- evaluation

// filterExpr is a parsed and bound $filter.
type filterExpr struct{ root node }

// compileFilter parses s and binds it to t. The expression must be Boolean.
func compileFilter(s string, t *typeDef) (*filterExpr, error) {
	n, err := parseFilter(s)
	if err != nil {
		return nil, err
	}
	k, err := bind(n, t)
	if err != nil {
		return nil, err
	}
	if k != kBool {
		return nil, qerr("The filter expression must be of type Edm.Boolean, not %s.", k)
	}
	return &filterExpr{root: n}, nil
}

func (f *filterExpr) match(st *store, e *entity) bool {
	v, _ := eval(st, e, f.root).(bool)
	return v
}

func eval(st *store, e *entity, n node) any {
	switch n := n.(type) {
	case litNode:
		return n.v
	case *pathNode:
		return st.pathValue(e, n.segs)
	case notNode:
		b, ok := eval(st, e, n.x).(bool)
		if !ok {
			return nil
		}
		return !b
	case binNode:
		switch n.op {
		case "and":
			l, _ := eval(st, e, n.l).(bool)
			if !l {
				return false
			}
			r, _ := eval(st, e, n.r).(bool)
			return r
		case "or":
			l, _ := eval(st, e, n.l).(bool)
			if l {
				return true
			}
			r, _ := eval(st, e, n.r).(bool)
			return r
		}
		l, r := eval(st, e, n.l), eval(st, e, n.r)
		if isNull(l) || isNull(r) {
			both := isNull(l) && isNull(r)
			switch n.op {
			case "eq":
				return both
			case "ne":
				return !both
			}
			return false
		}
		c, ok := compareValues(l, r)
		if !ok {
			return n.op == "ne"
		}
		switch n.op {
		case "eq":
			return c == 0
		case "ne":
			return c != 0
		case "gt":
			return c > 0
		case "ge":
			return c >= 0
		case "lt":
			return c < 0
		case "le":
			return c <= 0
		}
	case callNode:
		args := make([]string, len(n.args))
		for i, a := range n.args {
			s, ok := eval(st, e, a).(string)
			if !ok {
				if n.fn == "contains" || n.fn == "startswith" || n.fn == "endswith" {
					return false
				}
				return nil
			}
			args[i] = s
		}
		switch n.fn {
		case "tolower":
			return strings.ToLower(args[0])
		case "toupper":
			return strings.ToUpper(args[0])
		case "trim":
			return strings.TrimSpace(args[0])
		case "length":
			return float64(len([]rune(args[0])))
		case "contains":
			return strings.Contains(strings.ToLower(args[0]), strings.ToLower(args[1]))
		case "startswith":
			return strings.HasPrefix(strings.ToLower(args[0]), strings.ToLower(args[1]))
		case "endswith":
			return strings.HasSuffix(strings.ToLower(args[0]), strings.ToLower(args[1]))
		}
	}
	return nil
}

func isNull(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case *entity:
		return v == nil
	case map[string]any:
		return v == nil
	}
	return false
}

// compareValues orders two non-null values of the same type. ok is false
// when they cannot be ordered (structured values, mismatched types).
func compareValues(a, b any) (int, bool) {
	switch a := a.(type) {
	case string:
		if b, ok := b.(string); ok {
			return strings.Compare(a, b), true
		}
	case guidVal:
		if b, ok := b.(guidVal); ok {
			return strings.Compare(string(a), string(b)), true
		}
	case float64:
		if b, ok := b.(float64); ok {
			switch {
			case a < b:
				return -1, true
			case a > b:
				return 1, true
			}
			return 0, true
		}
	case bool:
		if b, ok := b.(bool); ok {
			switch {
			case a == b:
				return 0, true
			case !a:
				return -1, true
			}
			return 1, true
		}
	case time.Time:
		if b, ok := b.(time.Time); ok {
			return a.Compare(b), true
		}
	}
	return 0, false
}

// ---------------------------------------------------------------- $orderby

type orderItem struct {
	path *pathNode
	desc bool
}

// parseOrderBy parses "Path [asc|desc], ..." and binds every path to t.
func parseOrderBy(s string, t *typeDef) ([]orderItem, error) {
	var out []orderItem
	for _, part := range strings.Split(s, ",") {
		fields := strings.Fields(part)
		if len(fields) == 0 || len(fields) > 2 {
			return nil, qerr("Invalid $orderby item '%s'.", strings.TrimSpace(part))
		}
		desc := false
		if len(fields) == 2 {
			switch fields[1] {
			case "asc":
			case "desc":
				desc = true
			default:
				return nil, qerr("Invalid $orderby direction '%s'.", fields[1])
			}
		}
		segs := strings.Split(fields[0], "/")
		for _, sg := range segs {
			if sg == "" || !isIdentStart(sg[0]) || strings.IndexFunc(sg, func(r rune) bool { return r > 127 || !isIdentByte(byte(r)) }) >= 0 {
				return nil, qerr("Invalid $orderby property '%s'.", fields[0])
			}
		}
		k, err := t.resolve(segs)
		if err != nil {
			return nil, err
		}
		if k == kEntity || k == kComplex {
			return nil, qerr("Cannot order by the structured property '%s'.", fields[0])
		}
		out = append(out, orderItem{path: &pathNode{segs: segs, k: k}, desc: desc})
	}
	return out, nil
}

// orderCompare orders a before b (-1), after (1) or equal (0); nulls sort first.
func orderCompare(av, bv any) int {
	an, bn := isNull(av), isNull(bv)
	switch {
	case an && bn:
		return 0
	case an:
		return -1
	case bn:
		return 1
	}
	c, _ := compareValues(av, bv)
	return c
}
