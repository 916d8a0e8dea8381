package daemon

import (
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/state"
)

// The operator console: GET / on the admin endpoint, one page a person
// reads at a glance (what runs, when it last ran and how it ended, what is
// owed to which target), refreshed every 15 s (not when admin.token
// enables the buttons: a refresh would wipe a token being typed).
// html/template escapes every
// value, so an API's error text cannot inject markup. /status stays the
// JSON for machines.

type consoleFlow struct {
	Name, Source, Targets, Schedule string
	Next                            string
	State                           string // ok, failing, never run
	Error                           string
	LastRun                         string
	Took                            string
	Writes                          string
	Pending                         []consoleOwed
	PendingTotal                    int
	DeadLetters                     int
	Chart                           *consoleChart
	// Holder is the replica holding the flow's lease ("" without a
	// cluster); Here is whether that is this replica.
	Holder string
	Here   bool
	// Lag says how far the targets may be behind the source: everything
	// the source held when the last successful run started has been
	// written (pending writes aside); later edits wait for the next run.
	Lag string
}

// consoleChart is a flow's recent runs as inline SVG (no script, no CDN):
// one bar per run, its height the records written or failed, red when the
// run failed, and a line of the runs' durations over it.
type consoleChart struct {
	W, H     int
	Bars     []consoleBar
	Duration string // polyline points
	MaxRecs  int
	MaxTook  string
}

type consoleBar struct {
	X, Y, W, H int
	Failed     bool
	Title      string
}

type consoleDead struct {
	Key, Flow, Target, Op, Source, Error, Last string
	Pending                                    bool
	Attempts                                   int
}

type consoleOwed struct {
	Target string
	N      int
}

type consolePage struct {
	Version     string
	Now         string
	Flows       []consoleFlow
	DeadLetters []consoleDead
	Error       string
	// Actions is whether admin.token is set (the buttons are shown);
	// Message and MessageOK are the last action's answer (?msg=, ?ok=).
	Actions   bool
	Message   string
	MessageOK bool
	// Cluster says this replica and how many share the state ("" alone).
	Cluster string
}

// chartRuns is how many recent runs a flow's chart shows.
const chartRuns = 30

var consoleTmpl = template.Must(template.New("console").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">{{if not .Actions}}<meta http-equiv="refresh" content="15; url=/">{{end}}
<title>crmsync</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.4em .6em;border-bottom:1px solid #ddd;vertical-align:top}
th{background:#f5f5f5}
.ok{color:#176f2c}.failing{color:#b00020;font-weight:bold}.never{color:#777}
.owed{color:#b35c00;font-weight:bold}
.msg{padding:.5em 1em;border-radius:4px;background:#e8f4ea}.msg.bad{background:#fbe9eb}
button{font:inherit;padding:.1em .6em;margin:.1em 0}
svg .run{fill:#5b8def}svg .run.failed{fill:#b00020}svg .took{fill:none;stroke:#222;stroke-width:1.5}svg text{font-size:10px;fill:#777}.err{font-family:monospace;font-size:12px;color:#b00020;max-width:40em;overflow-wrap:anywhere}
small{color:#777}
</style></head><body>
<h1>crmsync</h1>
<p><small>crmsync {{.Version}} · {{.Now}} UTC · {{if .Actions}}<a href="/">refresh</a>{{else}}refreshes every 15 s{{end}} · <a href="/status">/status</a> (JSON) · <a href="/metrics">/metrics</a> · <a href="/readyz">/readyz</a></small></p>
{{if .Message}}<p class="msg{{if not .MessageOK}} bad{{end}}" role="status">{{.Message}}</p>{{end}}
{{if .Error}}<p class="err">state: {{.Error}}</p>{{end}}
{{if .Cluster}}<p><small>{{.Cluster}}</small></p>{{end}}
<form method="post" action="/">
<button type="submit" disabled hidden aria-hidden="true"></button>
{{if .Actions}}<p><label>admin token <input type="password" name="token" autocomplete="current-password" required></label> <small>needed by the buttons (run now, replay, drop)</small></p>
{{else}}<p><small>Changing actions (run now, replay, drop) are off: set <code>admin.token</code> in the config to enable them.</small></p>{{end}}
<table>
<tr><th>flow</th><th>systems</th><th>schedule</th><th>state</th><th>last run</th><th>in sync as of</th><th>writes</th><th>pending writes</th><th>dead letters</th><th>recent runs</th></tr>
{{range .Flows}}<tr>
<td><b>{{.Name}}</b>{{if $.Cluster}}<br><small>{{if .Here}}held by this replica{{else if .Holder}}held by {{.Holder}}{{else}}not held right now{{end}}</small>{{end}}</td>
<td>{{.Source}} → {{.Targets}}</td>
<td>{{.Schedule}}<br><small>next {{.Next}}</small>{{if $.Actions}}<br><button formaction="/flows/{{.Name}}/run">run now</button>{{end}}</td>
<td class="{{if eq .State "ok"}}ok{{else if eq .State "failing"}}failing{{else}}never{{end}}">{{.State}}{{if .Error}}<div class="err">{{.Error}}</div>{{end}}</td>
<td>{{.LastRun}}{{if .Took}}<br><small>took {{.Took}}</small>{{end}}</td>
<td>{{.Lag}}</td>
<td>{{.Writes}}</td>
<td>{{if .PendingTotal}}{{range .Pending}}<span class="owed">{{.Target}}: {{.N}}</span><br>{{end}}{{else}}none{{end}}</td>
<td>{{if .DeadLetters}}<span class="owed">{{.DeadLetters}}</span>{{else}}0{{end}}</td>
<td>{{with .Chart}}<svg width="{{.W}}" height="{{.H}}" role="img" aria-label="records and duration of recent runs">
{{range .Bars}}<rect class="run{{if .Failed}} failed{{end}}" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}"><title>{{.Title}}</title></rect>
{{end}}<polyline class="took" points="{{.Duration}}"/>
<text x="0" y="10">{{.MaxRecs}} rec · {{.MaxTook}}</text></svg>{{else}}<small>none yet</small>{{end}}</td>
</tr>{{end}}
</table>
<h2>Dead letters</h2>
{{if .DeadLetters}}<p><small>Retry {{if .Actions}}with the buttons, or {{end}}with <code>crmsync deadletters replay KEY</code>; forget with <code>crmsync deadletters drop KEY</code>.</small></p>
<table>
<tr><th>flow</th><th>target</th><th>op</th><th>source record</th><th>state</th><th>attempts</th><th>last</th><th>error</th><th>key</th>{{if .Actions}}<th></th>{{end}}</tr>
{{range .DeadLetters}}<tr><td>{{.Flow}}</td><td>{{.Target}}</td><td>{{.Op}}</td><td>{{.Source}}</td><td>{{if .Pending}}<span class="owed">pending (target down)</span>{{else}}dead (record refused){{end}}</td><td>{{.Attempts}}</td><td>{{.Last}}</td><td class="err">{{.Error}}</td><td><small>{{.Key}}</small></td>{{if $.Actions}}<td><button formaction="/deadletters/replay/{{.Key}}">replay</button> <button formaction="/deadletters/drop/{{.Key}}">drop</button></td>{{end}}</tr>
{{end}}</table>{{else}}<p>none</p>{{end}}
</form>
</body></html>
`))

func (d *Daemon) console(w http.ResponseWriter, r *http.Request) {
	now := time.Now().UTC()
	page := consolePage{Version: d.o.Version, Now: now.Format("2006-01-02 15:04:05"), Actions: d.o.AdminToken != "",
		Message: r.URL.Query().Get("msg"), MessageOK: r.URL.Query().Get("ok") == "1"}
	flows := make([]engine.Flow, len(d.o.Jobs))
	for i, j := range d.o.Jobs {
		flows[i] = j.Flow
	}
	sts, err := engine.Status(d.o.Store, flows)
	if err != nil {
		page.Error = err.Error()
	}
	holders := d.clusterView(r.Context(), &page)
	d.mu.Lock()
	failing := make(map[string]string, len(d.lastErr))
	for k, v := range d.lastErr {
		failing[k] = v
	}
	d.mu.Unlock()
	for i, j := range d.o.Jobs {
		cf := consoleFlow{Name: j.Flow.Name, Source: j.Flow.Source, Schedule: j.Schedule, State: "never run"}
		var targets []string
		for _, t := range j.Flow.Targets {
			targets = append(targets, t.System)
		}
		cf.Targets = strings.Join(targets, ", ")
		if s, err := d.o.Parser.Parse(j.Schedule); err == nil {
			cf.Next = s.Next(now).Format("15:04:05")
		}
		if i < len(sts) {
			d.fillConsoleFlow(&cf, sts[i], now)
		}
		if e, bad := failing[j.Flow.Name]; bad && d.holds(j.Flow.Name) {
			cf.State, cf.Error = "failing", e
		}
		if d.o.Cluster != nil {
			cf.Holder, cf.Here = holders[j.Flow.Name], d.o.Cluster.Holds(j.Flow.Name)
		}
		if runs, err := d.o.Store.Runs(j.Flow.Name, chartRuns); err == nil && len(runs) > 0 {
			cf.Chart = runChart(runs)
			cf.Lag = lag(runs, cf.PendingTotal, now)
		}
		page.Flows = append(page.Flows, cf)
		dls, err := d.o.Store.DeadLetters(j.Flow.Name)
		if err != nil && page.Error == "" {
			page.Error = err.Error()
		}
		for _, dl := range dls {
			page.DeadLetters = append(page.DeadLetters, consoleDead{Key: dl.Key, Flow: dl.Flow, Target: dl.System, Op: dl.Op,
				Source: strings.TrimSpace(dl.SourceSystem + " " + dl.SourceEntity + " " + dl.SourceID), Error: dl.Error,
				Last: dl.LastAt.UTC().Format("2006-01-02 15:04:05"), Pending: dl.Pending, Attempts: dl.Attempts})
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = consoleTmpl.Execute(w, page)
}

func (d *Daemon) fillConsoleFlow(cf *consoleFlow, st engine.FlowStatus, now time.Time) {
	if lr := st.LastRun; lr != nil {
		cf.State = "ok"
		if lr.Error != "" {
			cf.State, cf.Error = "failing", lr.Error
		}
		cf.LastRun = lr.Finished.UTC().Format("2006-01-02 15:04:05") + " (" + lr.Mode + ", " + ago(now.Sub(lr.Finished)) + ")"
		cf.Took = lr.Finished.Sub(lr.Started).Round(time.Millisecond).String()
		var parts []string
		for _, sys := range slices.Sorted(maps.Keys(lr.Counts)) {
			c := lr.Counts[sys]
			if n := c["created"] + c["updated"] + c["converted"] + c["deleted"] + c["closed"]; n > 0 || c["failed"] > 0 {
				p := sys + ": " + strconv.Itoa(n)
				if c["failed"] > 0 {
					p += ", " + strconv.Itoa(c["failed"]) + " failed"
				}
				parts = append(parts, p)
			}
		}
		cf.Writes = strings.Join(parts, "; ")
		if cf.Writes == "" {
			cf.Writes = "none"
		}
	}
	for _, t := range slices.Sorted(maps.Keys(st.Pending)) {
		if n := st.Pending[t]; n > 0 {
			cf.Pending = append(cf.Pending, consoleOwed{Target: t, N: n})
			cf.PendingTotal += n
		}
	}
	cf.DeadLetters = st.DeadLetters
}

// runRecords is what a run's bar counts: records written or failed, over
// every system.
// lag names the start of the newest successful sync or backfill among
// runs (newest first, as state.Runs returns them) and how long ago it
// was: the targets hold every source edit made before it, pending writes
// aside.
func lag(runs []state.Run, pending int, now time.Time) string {
	for _, r := range runs {
		if r.Error != "" || (r.Mode != string(engine.ModeSync) && r.Mode != string(engine.ModeBackfill)) {
			continue
		}
		s := r.Started.UTC().Format("15:04:05") + " (" + ago(now.Sub(r.Started)) + ")"
		switch {
		case pending == 1:
			s += ", except 1 pending write"
		case pending > 1:
			s += ", except " + strconv.Itoa(pending) + " pending writes"
		}
		return s
	}
	return "no successful run among the last " + strconv.Itoa(len(runs))
}

func runRecords(r state.Run) int {
	n := 0
	for _, c := range r.Counts {
		n += c["created"] + c["updated"] + c["converted"] + c["deleted"] + c["closed"] + c["failed"]
	}
	return n
}

// runChart draws runs (newest first, as state.Runs gives them) oldest on
// the left.
func runChart(runs []state.Run) *consoleChart {
	const barW, gap, h = 8, 2, 40
	ch := &consoleChart{W: chartRuns * (barW + gap), H: h + 12}
	var maxTook time.Duration
	for _, r := range runs {
		ch.MaxRecs = max(ch.MaxRecs, runRecords(r))
		maxTook = max(maxTook, r.Finished.Sub(r.Started))
	}
	ch.MaxTook = maxTook.Round(time.Millisecond).String()
	var pts []string
	for i := range runs {
		r := runs[len(runs)-1-i]
		recs, took := runRecords(r), r.Finished.Sub(r.Started)
		bh := 1
		if ch.MaxRecs > 0 {
			bh = max(1, recs*h/ch.MaxRecs)
		}
		x := i * (barW + gap)
		title := r.Finished.UTC().Format("2006-01-02 15:04") + " " + r.Mode + ": " + strconv.Itoa(recs) + " records, took " + took.Round(time.Millisecond).String()
		if r.Error != "" {
			title += ", failed: " + r.Error
		}
		ch.Bars = append(ch.Bars, consoleBar{X: x, Y: 12 + h - bh, W: barW, H: bh, Failed: r.Error != "", Title: title})
		y := 12 + h
		if maxTook > 0 {
			y -= int(int64(took) * h / int64(maxTook))
		}
		pts = append(pts, strconv.Itoa(x+barW/2)+","+strconv.Itoa(y))
	}
	ch.Duration = strings.Join(pts, " ")
	return ch
}

func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " h ago"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + " days ago"
}
