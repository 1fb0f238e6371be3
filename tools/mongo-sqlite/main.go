// Command mongo-sqlite runs FerretDB (the embeddable package, SQLite
// backend) as a MongoDB-wire-compatible server for the project's tests.
//
//	mongo-sqlite --listen 127.0.0.1:27017 --dir ./data
//
// It prints `listening on ADDR` on stdout once the port is bound, logs
// FerretDB's warnings and errors on stderr, and exits cleanly on SIGTERM or
// SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	dir := flag.String("dir", "", "directory for the SQLite files (created if missing)")
	logLevel := flag.String("log-level", "warn", "FerretDB log level: debug, info, warn or error")
	flag.Parse()

	if *dir == "" {
		fail("--dir is required")
	}
	absDir, err := filepath.Abs(*dir)
	if err != nil {
		fail("--dir: %v", err)
	}
	if err := os.MkdirAll(absDir, 0o755); err != nil {
		fail("create %s: %v", absDir, err)
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fail("--log-level: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	// Some FerretDB code logs through the default logger.
	slog.SetDefault(logger)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: *listen},
		Logger:   logger,
		Handler:  "sqlite",
		// FerretDB wants a directory URI with a trailing slash.
		SQLiteURL: "file:" + strings.TrimSuffix(absDir, "/") + "/",
	})
	if err != nil {
		fail("%v", err)
	}

	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	// New has bound the TCP listener already; Run accepts on it.
	addr := strings.TrimSuffix(strings.TrimPrefix(f.MongoDBURI(), "mongodb://"), "/")
	fmt.Printf("listening on %s\n", addr)

	if err := <-done; err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mongo-sqlite: "+format+"\n", args...)
	os.Exit(1)
}
