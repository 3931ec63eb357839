package register

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// ShutdownOptions tune ServeAndRegister; zero values mean the defaults.
type ShutdownOptions struct {
	// PropagationDelay is how long the server keeps serving after deregistering, so every
	// gateway sees the removal before connections are refused; default 1s, negative for none.
	PropagationDelay time.Duration
	// DrainTimeout bounds the graceful shutdown of in-flight requests; default 30s.
	DrainTimeout time.Duration
	// Signals end serving like ctx does; default SIGTERM and SIGINT.
	Signals []os.Signal
	Logger  *slog.Logger // default slog.Default()
}

// ServeAndRegister serves srv on ln, registers reg once the listener accepts, and on ctx end
// or a signal deregisters first, waits PropagationDelay, then drains the server. Removing the
// registration before closing is what lets a rolling restart lose no request. It returns nil
// after a clean shutdown, else the first error; a stop that arrives while Register is still
// running is a clean shutdown too.
func ServeAndRegister(ctx context.Context, srv *http.Server, ln net.Listener, reg Registrar, opts ShutdownOptions) error {
	if opts.PropagationDelay == 0 {
		opts.PropagationDelay = time.Second
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	if len(opts.Signals) == 0 {
		opts.Signals = []os.Signal{syscall.SIGTERM, os.Interrupt}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	sctx, stop := signal.NotifyContext(ctx, opts.Signals...)
	defer stop()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	var err error
	if rerr := reg.Register(sctx); rerr != nil {
		if sctx.Err() == nil {
			err = fmt.Errorf("register: %w", rerr)
		} else {
			// Told to stop while registering: a stop, not a failure. Register has undone
			// what it wrote; the Deregister below makes sure.
			opts.Logger.Info("stopping during registration: deregistering, then draining", "register_err", rerr)
		}
	} else {
		select {
		case <-sctx.Done():
			opts.Logger.Info("stopping: deregistering, then draining", "propagation_delay", opts.PropagationDelay)
		case serr := <-served:
			served <- serr // Shutdown below must not wait for it again
			err = fmt.Errorf("serve: %w", serr)
		}
	}

	// Cleanup must run even though ctx has ended; each step has its own bound.
	bg := context.WithoutCancel(ctx)
	dctx, cancel := context.WithTimeout(bg, 10*time.Second)
	derr := reg.Deregister(dctx)
	cancel()
	if derr != nil {
		opts.Logger.Warn("deregister failed; the registry drops the entry when its TTL runs out", "err", derr)
	}
	if err == nil && opts.PropagationDelay > 0 {
		time.Sleep(opts.PropagationDelay)
	}
	sdctx, cancel := context.WithTimeout(bg, opts.DrainTimeout)
	defer cancel()
	if serr := srv.Shutdown(sdctx); serr != nil && err == nil {
		err = fmt.Errorf("drain: %w", serr)
	}
	if serr := <-served; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = fmt.Errorf("serve: %w", serr)
	}
	return err
}
