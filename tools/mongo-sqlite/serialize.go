package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// FerretDB v1 executes an update or findAndModify as "query the matching
// documents, apply the update in Go, write them back", with nothing that
// stops two connections from interleaving those steps: concurrent `$inc`s
// lose updates and conditional decrements oversell. MongoDB guarantees
// single-document atomicity, and the project's tests rely on it.
//
// serializer restores it by running one command at a time: it accepts the
// clients' connections, gives each its own connection to FerretDB, and
// forwards each request and its reply while holding one global lock. The
// MongoDB wire protocol is request/reply per connection; FerretDB answers
// every request exactly once (it supports neither exhaust cursors nor
// fire-and-forget moreToCome writes, and the Rust driver sends neither).
type serializer struct {
	upstream string
	// indexed answers some hinted queries from SQLite (nil: none).
	indexed *indexed

	// exec is held from sending a request to FerretDB until its reply has
	// been read: commands run one at a time.
	exec sync.Mutex

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// maxMsgLen is the largest message FerretDB accepts (wire.MaxMsgLen).
const maxMsgLen = 48_000_000

func newSerializer(upstream string, indexed *indexed) *serializer {
	return &serializer{upstream: upstream, indexed: indexed, conns: map[net.Conn]struct{}{}}
}

// serve accepts connections on l until ctx is canceled, then closes l and
// every connection and waits for their goroutines.
func (s *serializer) serve(ctx context.Context, l net.Listener) {
	go func() {
		<-ctx.Done()
		_ = l.Close()
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
	}()

	for {
		client, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.proxy(client)
		}()
	}
	s.wg.Wait()
}

// track registers c to be closed on shutdown; false if shutdown began.
func (s *serializer) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *serializer) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	_ = c.Close()
}

func (s *serializer) proxy(client net.Conn) {
	if !s.track(client) {
		_ = client.Close()
		return
	}
	defer s.untrack(client)

	up, err := net.Dial("tcp", s.upstream)
	if err != nil {
		return
	}
	if !s.track(up) {
		_ = up.Close()
		return
	}
	defer s.untrack(up)

	fromClient := bufio.NewReader(client)
	fromUp := bufio.NewReader(up)
	for {
		req, err := readMessage(fromClient)
		if err != nil {
			return
		}
		res, err := s.roundTrip(up, fromUp, req)
		if err != nil {
			return
		}
		if _, err := client.Write(res); err != nil {
			return
		}
	}
}

func (s *serializer) roundTrip(up net.Conn, fromUp *bufio.Reader, req []byte) ([]byte, error) {
	s.exec.Lock()
	defer s.exec.Unlock()
	if s.indexed != nil {
		if res, err := s.indexed.answer(req); err == nil {
			return res, nil
		}
	}
	if _, err := up.Write(req); err != nil {
		return nil, err
	}
	res, err := readMessage(fromUp)
	if err == nil && s.indexed != nil {
		s.indexed.afterCreateIndexes(req, res)
	}
	return res, err
}

// readMessage reads one wire protocol message: a little-endian int32 total
// length, then the rest of the header and the body.
func readMessage(r *bufio.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := int(int32(binary.LittleEndian.Uint32(size[:])))
	if n < 16 || n > maxMsgLen {
		return nil, fmt.Errorf("invalid message length %d", n)
	}
	msg := make([]byte, n)
	copy(msg, size[:])
	if _, err := io.ReadFull(r, msg[4:]); err != nil {
		return nil, err
	}
	return msg, nil
}
