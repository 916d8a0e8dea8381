package yamlx

import (
	"fmt"
	"strings"
)

// Suggest explains which of valid the admin probably meant by got: a "did
// you mean" when one or a few names are close, else the whole list.
func Suggest(got string, valid []string) string {
	if d := DidYouMean(got, valid); d != "" {
		return d
	}
	return "expected one of: " + strings.Join(valid, ", ")
}

// DidYouMean is "did you mean "x"?" (or "x" or "y") when names in valid look
// like a misspelling of got, else "".
func DidYouMean(got string, valid []string) string {
	if near := nearest(got, valid); len(near) > 0 {
		return "did you mean " + quoteList(near, " or ") + "?"
	}
	return ""
}

// nearest returns the names in valid that look like a misspelling of got:
// the closest by edit distance (ignoring case and the separators _ - . and
// space), or failing that the few that contain, or are contained in, got.
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
