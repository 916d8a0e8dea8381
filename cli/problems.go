package cli

import (
	"errors"

	"github.com/crmsync/crmsync/config"
	"github.com/crmsync/crmsync/mapping"
)

// problem is one configuration or mapping problem as `validate --json`
// prints it.
type problem struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

// problems flattens what config.Load or app.BuildSystems returned (lists
// of file:line errors, joined errors) into one list, in order.
func problems(err error) []problem {
	var out []problem
	// A file:line list is taken apart only when err is that list itself
	// (same text); one wrapped with more context stays one message, so the
	// context is not lost.
	var walk func(error)
	walk = func(err error) {
		var ce config.Errors
		var me mapping.Errors
		var one config.Error
		var mone mapping.Error
		switch {
		case err == nil:
		case errors.As(err, &ce) && err.Error() == ce.Error():
			for _, e := range ce {
				out = append(out, problem{File: e.File, Line: e.Line, Message: e.Msg})
			}
		case errors.As(err, &me) && err.Error() == me.Error():
			for _, e := range me {
				out = append(out, problem{File: e.File, Line: e.Line, Message: e.Msg})
			}
		case errors.As(err, &one) && err.Error() == one.Error():
			out = append(out, problem{File: one.File, Line: one.Line, Message: one.Msg})
		case errors.As(err, &mone) && err.Error() == mone.Error():
			out = append(out, problem{File: mone.File, Line: mone.Line, Message: mone.Msg})
		default:
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				for _, e := range j.Unwrap() {
					walk(e)
				}
				return
			}
			out = append(out, problem{Message: err.Error()})
		}
	}
	walk(err)
	return out
}
