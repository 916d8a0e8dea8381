package cli

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"runtime"
	"runtime/pprof"

	"github.com/spf13/cobra"
)

// profiles writes the pprof profiles asked for by the hidden --cpuprofile
// and --memprofile flags (used by "crmsync bench --profile" and by anyone
// looking for where a run spends its time: go tool pprof crmsync cpu.pprof).
type profiles struct {
	cpu, mem, addr string
	cpuFile        *os.File
	srv            *http.Server
}

func (p *profiles) flags(root *cobra.Command) {
	root.PersistentFlags().StringVar(&p.cpu, "cpuprofile", "", "write a pprof CPU profile of the command to this file")
	root.PersistentFlags().StringVar(&p.mem, "memprofile", "", "write a pprof heap (allocations) profile at the end of the command to this file")
	root.PersistentFlags().StringVar(&p.addr, "pprof", "", "serve net/http/pprof on this loopback address while the command runs (e.g. 127.0.0.1:6060)")
	_ = root.PersistentFlags().MarkHidden("pprof")
	_ = root.PersistentFlags().MarkHidden("cpuprofile")
	_ = root.PersistentFlags().MarkHidden("memprofile")
}

func (p *profiles) start() error {
	if p.addr != "" {
		if err := p.serve(); err != nil {
			return err
		}
	}
	if p.cpu == "" {
		return nil
	}
	f, err := os.Create(p.cpu)
	if err != nil {
		return fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("--cpuprofile: %w", err)
	}
	p.cpuFile = f
	return nil
}

// serve starts the pprof endpoints on p.addr, which must be a loopback
// address: profiles show the process's memory.
func (p *profiles) serve() error {
	host, _, err := net.SplitHostPort(p.addr)
	if err != nil {
		return fmt.Errorf("--pprof %q: %w", p.addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--pprof %q: want a loopback address such as 127.0.0.1:6060", p.addr)
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("--pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", httppprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", httppprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", httppprof.Trace)
	p.srv = &http.Server{Handler: mux}
	go func() {
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "crmsync: --pprof:", err)
		}
	}()
	return nil
}

func (p *profiles) stop() error {
	if p.srv != nil {
		_ = p.srv.Close()
		p.srv = nil
	}
	var first error
	if p.cpuFile != nil {
		pprof.StopCPUProfile()
		if err := p.cpuFile.Close(); err != nil {
			first = fmt.Errorf("--cpuprofile: %w", err)
		}
		p.cpuFile = nil
	}
	if p.mem != "" {
		f, err := os.Create(p.mem)
		if err != nil {
			return fmt.Errorf("--memprofile: %w", err)
		}
		runtime.GC()
		err = pprof.Lookup("allocs").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil && first == nil {
			first = fmt.Errorf("--memprofile: %w", err)
		}
	}
	return first
}
