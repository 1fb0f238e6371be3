// Command mongo-sqlite runs FerretDB v1 (its embeddable package, SQLite
// backend) as a MongoDB-wire-compatible server for the project's tests and
// for local runs on machines without MongoDB.
//
//	mongo-sqlite --listen 127.0.0.1:27017 --dir ./data
//
// It prints `listening on ADDR` on stdout once the port is bound (clients
// may connect from then on), logs FerretDB's warnings and errors on stderr,
// and exits cleanly on SIGTERM or SIGINT. With --exit-on-stdin-eof it also
// shuts down when its standard input is closed, so a test harness that dies
// without cleaning up does not leave a server behind.
//
// By default commands run one at a time (see serialize.go): FerretDB v1
// alone does not make `$inc`, updates or findAndModify atomic against
// concurrent commands. --serialize=false serves FerretDB directly.
//
// With --serialize, a find or count that names an index in `hint` and fits
// it is answered from SQLite through a typed companion index instead of
// FerretDB's full scan (see indexed.go); --typed-indexes=false turns that
// off.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	dir := flag.String("dir", "", "directory for the SQLite files (created if missing)")
	logLevel := flag.String("log-level", "warn", "FerretDB log level: debug, info, warn or error")
	serialize := flag.Bool("serialize", true,
		"run one command at a time, which makes single-document updates atomic")
	typedIndexes := flag.Bool("typed-indexes", true,
		"with --serialize, answer hinted index queries and counts from SQLite (see indexed.go)")
	stdinEOF := flag.Bool("exit-on-stdin-eof", false, "also shut down when standard input is closed")
	shutdownTimeout := flag.Duration("shutdown-timeout", 5*time.Second,
		"on shutdown, wait this long for open connections before exiting anyway")
	flag.Parse()

	if *dir == "" {
		fail("--dir is required")
	}
	absDir, err := filepath.Abs(*dir)
	if err != nil {
		fail("--dir: %v", err)
	}
	if strings.ContainsAny(absDir, "?#%") {
		fail("--dir %q: the path must not contain '?', '#' or '%%'", absDir)
	}
	if err := os.MkdirAll(absDir, 0o755); err != nil {
		fail("create %s: %v", absDir, err)
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fail("--log-level: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	// Code that does not get the configured logger uses the default one.
	slog.SetDefault(logger)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if *stdinEOF {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			stop()
		}()
	}

	// With --serialize, clients talk to our listener and FerretDB listens on
	// a private loopback port. Bind the public port first, so that a port
	// already in use fails at once.
	var public net.Listener
	ferretAddr := *listen
	if *serialize {
		if public, err = net.Listen("tcp", *listen); err != nil {
			fail("%v", err)
		}
		ferretAddr = "127.0.0.1:0"
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: ferretAddr},
		Logger:   logger,
		Handler:  "sqlite",
		// A directory URI (trailing slash): one SQLite file per database.
		// FerretDB adds WAL mode; synchronous(full) makes every commit
		// fsync the WAL, so an acknowledged write survives a crash.
		SQLiteURL: "file:" + strings.TrimSuffix(absDir, "/") + "/?_pragma=synchronous(full)",
	})
	if err != nil {
		fail("%v", err)
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = f.Run(ctx) // always nil
	}()

	// New has bound FerretDB's listener already; Run accepts on it.
	addr := strings.TrimSuffix(strings.TrimPrefix(f.MongoDBURI(), "mongodb://"), "/")
	if *serialize {
		var x *indexed
		if *typedIndexes {
			x = newIndexed(absDir)
		}
		s := newSerializer(addr, x)
		addr = public.Addr().String()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serve(ctx, public)
		}()
	}
	fmt.Printf("listening on %s\n", addr)

	<-ctx.Done()
	stop() // a second signal kills the process

	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	// Without --serialize, FerretDB gives connected clients up to 3 s to
	// disconnect; with it, client connections are closed at once.
	select {
	case <-done:
	case <-time.After(*shutdownTimeout):
		fmt.Fprintf(os.Stderr, "mongo-sqlite: connections still open after %s; exiting\n", *shutdownTimeout)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mongo-sqlite: "+format+"\n", args...)
	os.Exit(1)
}
