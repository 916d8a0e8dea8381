package engine

import (
	"fmt"
	"time"

	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/logkey"
)

// merge folds one system's view of a record into its golden record, field
// by field, and reports whether the golden record changed.
//
// For every canonical field the system's mapping carries:
//   - a field the system did not change since crmsync last saw it there
//     (same as lastView) is ignored: an old value never overwrites a newer
//     one that came from elsewhere;
//   - if another system owns the field (mapping rule owner: true) and the
//     golden record has a value, the owner's value stays;
//   - otherwise the newest change wins: the system's change (dated by the
//     record's updated time) replaces the golden value unless the golden
//     value came from a later change;
//   - the stage only moves forward, unless the flow allows a step back.
//
// It returns whether the golden record changed, and the owner systems whose
// fields this system tried to change (its edits there lost).
func (r *run) merge(g, view *funnel.Record, sys *System, at time.Time, lastView *funnel.Record) (bool, map[string]bool) {
	changed := false
	var overridden map[string]bool
	if g.Sources == nil {
		g.Sources = map[string]funnel.Source{}
	}
	for _, name := range funnel.FieldNames() {
		if !sys.Map.Carries(name) {
			continue
		}
		nv, has := view.Fields[name]
		cur, gHas := g.Fields[name]
		if has == gHas && (!has || fmt.Sprint(nv) == fmt.Sprint(cur)) {
			continue // same value
		}
		if lastView != nil {
			lv, lHas := lastView.Fields[name]
			if lHas == has && (!has || fmt.Sprint(lv) == fmt.Sprint(nv)) {
				continue // this system did not change the field
			}
		}
		if owner := r.ownerOf(name); owner != "" && owner != sys.Name && gHas {
			if overridden == nil {
				overridden = map[string]bool{}
			}
			overridden[owner] = true
			continue
		} else if owner != sys.Name && gHas {
			if src, ok := g.Sources[name]; ok && src.At.After(at) {
				continue // the golden value is from a newer change
			}
		}
		if name == funnel.FieldStage && has && gHas && !r.f.AllowStageBack {
			if funnel.Stage(fmt.Sprint(nv)).Before(funnel.Stage(fmt.Sprint(cur))) {
				r.log.Debug().Str(logkey.CanonicalID, g.ID).Str("from", fmt.Sprint(cur)).Str("to", fmt.Sprint(nv)).Str(logkey.System, sys.Name).Msg("stage step back ignored (allow_stage_back is off)")
				continue
			}
		}
		if has {
			g.Fields[name] = nv
		} else {
			delete(g.Fields, name)
		}
		g.Sources[name] = funnel.Source{System: sys.Name, At: at.UTC()}
		changed = true
	}
	g.Complete()
	return changed, overridden
}

// ownerOf returns the system whose mapping owns a canonical field, or "".
func (r *run) ownerOf(field string) string {
	for name, s := range r.e.o.Systems {
		if s.Map.Owns(field) {
			return name
		}
	}
	return ""
}
