package overplane

import (
	"net/http"

	"github.com/crmsync/crmsync/connectors/emukit"
)

type childRow struct{ id string }

func (e *Emulator) seedChildren(p *prospect, i int, pf emukit.Profile) {}

func (e *Emulator) routeChild(r *http.Request, path string, body map[string]any) ([]byte, *apiError, bool) {
	return nil, nil, false
}
