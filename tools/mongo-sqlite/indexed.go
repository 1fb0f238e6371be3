package main

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	_ "modernc.org/sqlite" // the driver FerretDB itself uses
)

// FerretDB v1's SQLite backend pushes nothing down but `_id` equality (and
// even that misses the `_id` index: it queries `sjson->'$._id'`, the index
// is on `sjson->"_id"`). A filtered, sorted find or a count decodes every
// document of the collection in Go: ~100 µs a document, 10 s for the
// 100,000 orders of a stress run's sale, and with one command at a time
// everything else waits meanwhile. Its createIndexes makes SQLite indexes
// on the JSON text of the fields, which only enforce uniqueness.
//
// indexed answers the few commands that name an index in `hint` and have
// exactly the shape that index serves — an equality on its first field (or
// no filter) and a sort on the rest, or the count of such a filter — from
// SQLite directly, through a companion index on typed values. Anything
// else, and any case it cannot answer exactly as FerretDB would (a field
// of mixed or unorderable types, an array where an equality could match
// an element, a document it cannot convert), goes to FerretDB as before.
//
// The companion index of FerretDB index I with fields K0..Kn-1 is, with
// T(k) the field's type from the document's sjson schema (empty if missing)
// and V(k) its value as SQLite reads it from JSON:
//
//	T(K0), ..., T(Kn-1), V(K0), ..., V(Kn-1)   (V descending where I is)
//
// Within one type, V orders as MongoDB does for the types allowed (strings
// byte-wise, numbers and dates numerically), and the types come first, so
// with every type fixed by an equality the index yields MongoDB's order;
// the types are fixed when the first and last type tuples in the index are
// the same: two index seeks. Counting is a range count on the same index.
type indexed struct {
	dir   string
	reqID atomic.Int32
}

var errNotHere = errors.New("not answered here")

// safeField: top-level fields whose names need no quoting in a JSON path
// and no escaping in sjson.
var safeField = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

const (
	opMsg         = 2013
	sjsonColumn   = "_ferretdb_sjson"
	metadataTable = "_ferretdb_collections"
	// Larger pages go to FerretDB (its cursors handle any size).
	maxLimit = 1000
)

func newIndexed(dir string) *indexed {
	return &indexed{dir: dir}
}

// command returns the OP_MSG's request id and command document when req is
// a plain OP_MSG (no flags, one body section) that this file may answer.
func command(req []byte) (int32, bson.D, bool) {
	if len(req) < 21 || int32(binary.LittleEndian.Uint32(req[12:16])) != opMsg {
		return 0, nil, false
	}
	if binary.LittleEndian.Uint32(req[16:20]) != 0 || req[20] != 0 {
		return 0, nil, false
	}
	body := req[21:]
	if len(body) < 5 || int(binary.LittleEndian.Uint32(body[:4])) != len(body) {
		return 0, nil, false
	}
	// The command's name is the first key: look at it before decoding
	// every command the server gets.
	name, _, found := bytes.Cut(body[5:], []byte{0})
	if !found {
		return 0, nil, false
	}
	switch string(name) {
	case "find", "aggregate", "createIndexes":
	default:
		return 0, nil, false
	}
	var doc bson.D
	if err := bson.Unmarshal(body, &doc); err != nil || len(doc) == 0 {
		return 0, nil, false
	}
	return int32(binary.LittleEndian.Uint32(req[4:8])), doc, true
}

// reply is an OP_MSG answering request requestID with doc.
func (x *indexed) reply(requestID int32, doc bson.D) ([]byte, error) {
	body, err := bson.Marshal(doc)
	if err != nil {
		return nil, err
	}
	if 21+len(body) > maxMsgLen {
		return nil, errNotHere
	}
	msg := make([]byte, 21, 21+len(body))
	binary.LittleEndian.PutUint32(msg[0:4], uint32(21+len(body)))
	binary.LittleEndian.PutUint32(msg[4:8], uint32(x.reqID.Add(1)))
	binary.LittleEndian.PutUint32(msg[8:12], uint32(requestID))
	binary.LittleEndian.PutUint32(msg[12:16], opMsg)
	// flags 0, section kind 0
	return append(msg, body...), nil
}

// answer answers a find or aggregate from SQLite, or returns errNotHere.
func (x *indexed) answer(req []byte) (res []byte, err error) {
	// A bug here must cost a slow answer from FerretDB, not the server.
	defer func() {
		if recover() != nil {
			res, err = nil, errNotHere
		}
	}()
	requestID, cmd, ok := command(req)
	if !ok {
		return nil, errNotHere
	}
	var result bson.D
	switch cmd[0].Key {
	case "find":
		result, err = x.find(cmd)
	case "aggregate":
		result, err = x.count(cmd)
	default:
		return nil, errNotHere
	}
	if err != nil {
		return nil, err
	}
	return x.reply(requestID, result)
}

// afterCreateIndexes builds the companion indexes of the (non-unique)
// indexes a successful createIndexes asked for, while the collection is
// usually still small, so that no request pays for building one later.
func (x *indexed) afterCreateIndexes(req, res []byte) {
	defer func() { _ = recover() }()
	_, cmd, ok := command(req)
	if !ok || cmd[0].Key != "createIndexes" || !replyOK(res) {
		return
	}
	coll, _ := cmd[0].Value.(string)
	dbName, _ := get(cmd, "$db").(string)
	specs, _ := get(cmd, "indexes").(bson.A)
	db, err := x.open(dbName)
	if err != nil {
		return
	}
	defer db.Close()
	for _, spec := range specs {
		// A unique index is there for its constraint; a companion would
		// only slow every insert down (a hint naming one builds it then).
		if spec, ok := spec.(bson.D); ok && get(spec, "unique") != true {
			if name, ok := get(spec, "name").(string); ok {
				// A failure leaves the index to be built on first use.
				_, _, _ = companion(db, coll, name)
			}
		}
	}
}

func replyOK(res []byte) bool {
	if len(res) < 21 || res[20] != 0 {
		return false
	}
	var doc bson.D
	if bson.Unmarshal(res[21:], &doc) != nil {
		return false
	}
	ok, isFloat := get(doc, "ok").(float64)
	return isFloat && ok == 1
}

func get(doc bson.D, key string) any {
	for _, e := range doc {
		if e.Key == key {
			return e.Value
		}
	}
	return nil
}

// only reports whether doc has no keys but the allowed ones.
func only(doc bson.D, allowed ...string) bool {
	for _, e := range doc {
		found := false
		for _, a := range allowed {
			if e.Key == a {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Fields any command may carry that do not change its answer here: the
// server runs one command at a time with no replication or sessions.
var sessionFields = []string{"$db", "lsid", "$clusterTime", "$readPreference", "readConcern", "maxTimeMS", "comment"}

func integer(v any) (int64, bool) {
	switch n := v.(type) {
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case float64:
		if n == float64(int64(n)) {
			return int64(n), true
		}
	}
	return 0, false
}

// query is a hinted equality-then-sort query on one collection.
type query struct {
	db     *sql.DB
	table  string
	keys   []indexKey
	filter *string // the value the first key equals, if filtered
}

type indexKey struct {
	Field      string `json:"field"`
	Descending bool   `json:"descending"`
}

func typeOf(field string) string {
	return fmt.Sprintf(`coalesce(%s->>'$."$s".p.%s.t', '')`, sjsonColumn, field)
}

func valueOf(field string) string {
	return fmt.Sprintf(`%s->>'$.%s'`, sjsonColumn, field)
}

func (x *indexed) open(dbName string) (*sql.DB, error) {
	if dbName == "" || strings.ContainsAny(dbName, `/\.`+"\x00") {
		return nil, errNotHere
	}
	path := filepath.Join(x.dir, dbName+".sqlite")
	if _, err := os.Stat(path); err != nil {
		return nil, errNotHere
	}
	// A connection per command: a dropped database's file is never kept.
	u := "file:" + (&url.URL{Path: path}).EscapedPath() + "?mode=rw&_pragma=busy_timeout(10000)"
	db, err := sql.Open("sqlite", u)
	if err != nil {
		return nil, errNotHere
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// companion finds the table and keys of FerretDB index `name` of `coll` and
// makes sure its companion index exists.
//
// FerretDB's own SQLite index of a non-unique index serves no query (it
// reads through none) and costs every insert, so the companion takes its
// place under its name: FerretDB's dropIndexes and collStats then act on
// the companion. A unique index keeps FerretDB's, which enforces the
// constraint, and gets a companion beside it.
func companion(db *sql.DB, coll, name string) (string, []indexKey, error) {
	var table, settings string
	err := db.QueryRow(`SELECT table_name, settings FROM "`+metadataTable+`" WHERE name = ?`, coll).
		Scan(&table, &settings)
	if err != nil {
		return "", nil, errNotHere
	}
	var meta struct {
		Indexes []struct {
			Name   string     `json:"name"`
			Key    []indexKey `json:"key"`
			Unique bool       `json:"unique"`
		} `json:"indexes"`
	}
	if json.Unmarshal([]byte(settings), &meta) != nil {
		return "", nil, errNotHere
	}
	for _, index := range meta.Indexes {
		if index.Name != name {
			continue
		}
		if len(index.Key) == 0 {
			return "", nil, errNotHere
		}
		types := make([]string, 0, len(index.Key))
		values := make([]string, 0, len(index.Key))
		for _, k := range index.Key {
			if !safeField.MatchString(k.Field) {
				return "", nil, errNotHere
			}
			types = append(types, typeOf(k.Field))
			v := valueOf(k.Field)
			if k.Descending {
				v += " DESC"
			}
			values = append(values, v)
		}
		columns := strings.Join(append(types, values...), ", ")
		sqliteName := table + "_" + name
		if index.Unique {
			sqliteName = "_flashsale_typed_" + sqliteName
		}
		var current string
		err := db.QueryRow(`SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ? AND tbl_name = ?`,
			sqliteName, table).Scan(&current)
		if err == nil && strings.Contains(current, companionMark) {
			return table, index.Key, nil
		}
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return "", nil, err
		}
		tx, err := db.Begin()
		if err != nil {
			return "", nil, err
		}
		defer tx.Rollback() //nolint:errcheck // after Commit: a no-op
		if _, err := tx.Exec(fmt.Sprintf(`DROP INDEX IF EXISTS %q`, sqliteName)); err != nil {
			return "", nil, err
		}
		if _, err := tx.Exec(fmt.Sprintf(`CREATE INDEX %q ON %q (%s)`, sqliteName, table, columns)); err != nil {
			return "", nil, err
		}
		if err := tx.Commit(); err != nil {
			return "", nil, err
		}
		return table, index.Key, nil
	}
	return "", nil, errNotHere
}

// companionMark is in every companion's SQL, and in no index FerretDB makes.
const companionMark = `'$."$s".p.`

// prepare checks the parts every hinted command shares: the collection,
// the hint naming an index, the filter (nothing, or the index's first
// field equal to a string). It returns the query on success.
func (x *indexed) prepare(cmd bson.D, filter any) (*query, error) {
	coll, _ := cmd[0].Value.(string)
	dbName, _ := get(cmd, "$db").(string)
	hint, ok := get(cmd, "hint").(string)
	if !ok || coll == "" {
		return nil, errNotHere
	}
	f, ok := filter.(bson.D)
	if filter != nil && !ok || len(f) > 1 {
		return nil, errNotHere
	}
	db, err := x.open(dbName)
	if err != nil {
		return nil, err
	}
	table, keys, err := companion(db, coll, hint)
	if err != nil {
		db.Close()
		return nil, errNotHere
	}
	q := &query{db: db, table: table, keys: keys}
	if len(f) == 1 {
		value, isString := f[0].Value.(string)
		if !isString || f[0].Key != keys[0].Field {
			db.Close()
			return nil, errNotHere
		}
		q.filter = &value
	}
	return q, nil
}

// types returns the one tuple of types the query's documents have in the
// fields the filter does not fix (ok false if they differ), and whether
// there are any such documents at all.
func (q *query) types() (tuple []string, found bool, ok bool) {
	var where string
	var args []any
	free := q.keys
	if q.filter != nil {
		// MongoDB's equality also matches an array holding the value.
		var one int
		err := q.db.QueryRow(fmt.Sprintf(`SELECT 1 FROM %q WHERE %s = 'array' LIMIT 1`,
			q.table, typeOf(q.keys[0].Field))).Scan(&one)
		if !errors.Is(err, sql.ErrNoRows) {
			return nil, false, false
		}
		where = fmt.Sprintf(` WHERE %s = 'string'`, typeOf(q.keys[0].Field))
		free = q.keys[1:]
	}
	if len(free) == 0 {
		var one int
		err := q.db.QueryRow(fmt.Sprintf(`SELECT 1 FROM %q%s LIMIT 1`, q.table, where), args...).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, false, true
		}
		return nil, err == nil, err == nil
	}
	cols := make([]string, len(free))
	asc := make([]string, len(free))
	desc := make([]string, len(free))
	for i, k := range free {
		cols[i] = typeOf(k.Field)
		asc[i] = cols[i]
		desc[i] = cols[i] + " DESC"
	}
	scan := func(order []string) ([]string, error) {
		row := make([]string, len(free))
		ptrs := make([]any, len(free))
		for i := range row {
			ptrs[i] = &row[i]
		}
		err := q.db.QueryRow(fmt.Sprintf(`SELECT %s FROM %q%s ORDER BY %s LIMIT 1`,
			strings.Join(cols, ", "), q.table, where, strings.Join(order, ", ")), args...).Scan(ptrs...)
		return row, err
	}
	first, err := scan(asc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, true
	}
	if err != nil {
		return nil, false, false
	}
	last, err := scan(desc)
	if err != nil || strings.Join(first, "\x00") != strings.Join(last, "\x00") {
		return nil, false, false
	}
	return first, true, true
}

// where is the WHERE clause fixing every type and the filter's value.
func (q *query) where(tuple []string) (string, []any) {
	var conds []string
	var args []any
	free := q.keys
	if q.filter != nil {
		conds = append(conds, typeOf(q.keys[0].Field)+" = 'string'")
		free = q.keys[1:]
	}
	for i, k := range free {
		conds = append(conds, typeOf(k.Field)+" = ?")
		args = append(args, tuple[i])
	}
	if q.filter != nil {
		conds = append(conds, valueOf(q.keys[0].Field)+" = ?")
		args = append(args, *q.filter)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// Types whose SQLite values (from JSON) order as MongoDB orders them.
var orderable = map[string]bool{
	"": true, "null": true, "string": true, "objectId": true, "bool": true,
	"int": true, "long": true, "double": true, "date": true,
}

// find answers {find, filter, sort, skip, limit, hint} when the sort is
// the hinted index's fields after the filter's, in the index's directions.
func (x *indexed) find(cmd bson.D) (bson.D, error) {
	if !only(cmd, append([]string{"find", "filter", "sort", "skip", "limit", "batchSize", "singleBatch", "hint"}, sessionFields...)...) {
		return nil, errNotHere
	}
	limit, ok := integer(get(cmd, "limit"))
	if !ok || limit < 1 || limit > maxLimit {
		return nil, errNotHere
	}
	if b := get(cmd, "batchSize"); b != nil {
		if n, ok := integer(b); !ok || n < limit {
			return nil, errNotHere
		}
	}
	var skip int64
	if s := get(cmd, "skip"); s != nil {
		if skip, ok = integer(s); !ok || skip < 0 {
			return nil, errNotHere
		}
	}
	sort, ok := get(cmd, "sort").(bson.D)
	if !ok || len(sort) == 0 {
		return nil, errNotHere
	}
	q, err := x.prepare(cmd, get(cmd, "filter"))
	if err != nil {
		return nil, err
	}
	defer q.db.Close()
	sorted := q.keys
	if q.filter != nil {
		sorted = q.keys[1:]
	}
	if len(sort) != len(sorted) {
		return nil, errNotHere
	}
	order := make([]string, len(sorted))
	for i, k := range sorted {
		dir, ok := integer(sort[i].Value)
		if !ok || sort[i].Key != k.Field || (dir == -1) != k.Descending || (dir != 1 && dir != -1) {
			return nil, errNotHere
		}
		order[i] = valueOf(k.Field)
		if k.Descending {
			order[i] += " DESC"
		}
	}
	tuple, found, ok := q.types()
	if !ok {
		return nil, errNotHere
	}
	for _, t := range tuple {
		if !orderable[t] {
			return nil, errNotHere
		}
	}
	batch := bson.A{}
	if found {
		where, args := q.where(tuple)
		rows, err := q.db.Query(fmt.Sprintf(`SELECT %s FROM %q%s ORDER BY %s LIMIT ? OFFSET ?`,
			sjsonColumn, q.table, where, strings.Join(order, ", ")), append(args, limit, skip)...)
		if err != nil {
			return nil, errNotHere
		}
		defer rows.Close()
		for rows.Next() {
			var text string
			if err := rows.Scan(&text); err != nil {
				return nil, errNotHere
			}
			doc, err := fromSJSON([]byte(text))
			if err != nil {
				return nil, errNotHere
			}
			batch = append(batch, doc)
		}
		if rows.Err() != nil {
			return nil, errNotHere
		}
	}
	return cursorReply(cmd, batch), nil
}

func cursorReply(cmd bson.D, batch bson.A) bson.D {
	dbName, _ := get(cmd, "$db").(string)
	coll, _ := cmd[0].Value.(string)
	return bson.D{
		{Key: "cursor", Value: bson.D{
			{Key: "firstBatch", Value: batch},
			{Key: "id", Value: int64(0)},
			{Key: "ns", Value: dbName + "." + coll},
		}},
		{Key: "ok", Value: float64(1)},
	}
}

// count answers the aggregate the drivers' countDocuments sends:
// [{$match: filter}, {$group: {_id: 1, n: {$sum: 1}}}] with a hint.
func (x *indexed) count(cmd bson.D) (bson.D, error) {
	if !only(cmd, append([]string{"aggregate", "pipeline", "cursor", "hint"}, sessionFields...)...) {
		return nil, errNotHere
	}
	pipeline, ok := get(cmd, "pipeline").(bson.A)
	if !ok || len(pipeline) != 2 {
		return nil, errNotHere
	}
	match, ok1 := pipeline[0].(bson.D)
	group, ok2 := pipeline[1].(bson.D)
	if !ok1 || !ok2 || len(match) != 1 || match[0].Key != "$match" || len(group) != 1 || group[0].Key != "$group" {
		return nil, errNotHere
	}
	spec, ok := group[0].Value.(bson.D)
	if !ok || len(spec) != 2 || spec[0].Key != "_id" || spec[1].Key != "n" {
		return nil, errNotHere
	}
	if id, ok := integer(spec[0].Value); !ok || id != 1 {
		return nil, errNotHere
	}
	sum, ok := spec[1].Value.(bson.D)
	if !ok || len(sum) != 1 || sum[0].Key != "$sum" {
		return nil, errNotHere
	}
	if one, ok := integer(sum[0].Value); !ok || one != 1 {
		return nil, errNotHere
	}
	if c, ok := get(cmd, "cursor").(bson.D); !ok || !only(c, "batchSize") {
		return nil, errNotHere
	}
	q, err := x.prepare(cmd, match[0].Value)
	if err != nil {
		return nil, err
	}
	defer q.db.Close()
	tuple, found, ok := q.types()
	if !ok {
		return nil, errNotHere
	}
	batch := bson.A{}
	if found {
		where, args := q.where(tuple)
		var n int64
		if err := q.db.QueryRow(fmt.Sprintf(`SELECT count(*) FROM %q%s`, q.table, where), args...).Scan(&n); err != nil {
			return nil, errNotHere
		}
		if n > 0 {
			var v any = n
			if n <= 1<<31-1 {
				v = int32(n)
			}
			batch = append(batch, bson.D{{Key: "_id", Value: int32(1)}, {Key: "n", Value: v}})
		}
	}
	return cursorReply(cmd, batch), nil
}

// sjson is FerretDB's storage format: the document's values as JSON plus a
// schema (`$s`) with each field's BSON type and the keys' order.
type sjsonSchema struct {
	Properties map[string]*sjsonElem `json:"p"`
	Keys       []string              `json:"$k"`
}

type sjsonElem struct {
	Type   string       `json:"t"`
	Schema *sjsonSchema `json:"$s"`
	Items  []*sjsonElem `json:"i"`
}

func fromSJSON(text []byte) (bson.D, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(text, &fields); err != nil {
		return nil, err
	}
	var schema sjsonSchema
	if err := json.Unmarshal(fields["$s"], &schema); err != nil {
		return nil, err
	}
	return object(&schema, fields)
}

func object(schema *sjsonSchema, fields map[string]json.RawMessage) (bson.D, error) {
	if schema == nil || len(schema.Keys) != len(schema.Properties) {
		return nil, errNotHere
	}
	doc := make(bson.D, 0, len(schema.Keys))
	for _, k := range schema.Keys {
		raw, ok := fields[k]
		elem := schema.Properties[k]
		if !ok || elem == nil {
			return nil, errNotHere
		}
		v, err := value(elem, raw)
		if err != nil {
			return nil, err
		}
		doc = append(doc, bson.E{Key: k, Value: v})
	}
	return doc, nil
}

func value(elem *sjsonElem, raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	switch elem.Type {
	case "object":
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil {
			return nil, err
		}
		return object(elem.Schema, fields)
	case "array":
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil || len(items) != len(elem.Items) {
			return nil, errNotHere
		}
		a := make(bson.A, len(items))
		for i, item := range items {
			if elem.Items[i] == nil {
				return nil, errNotHere
			}
			v, err := value(elem.Items[i], item)
			if err != nil {
				return nil, err
			}
			a[i] = v
		}
		return a, nil
	case "string":
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	case "objectId":
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return primitive.ObjectIDFromHex(s)
	case "bool":
		var b bool
		err := json.Unmarshal(raw, &b)
		return b, err
	case "null":
		return nil, nil
	case "double", "int", "long", "date":
		var n json.Number
		if err := dec.Decode(&n); err != nil {
			return nil, err
		}
		switch elem.Type {
		case "double":
			return strconv.ParseFloat(n.String(), 64)
		case "int":
			i, err := strconv.ParseInt(n.String(), 10, 32)
			return int32(i), err
		case "long":
			return strconv.ParseInt(n.String(), 10, 64)
		default:
			ms, err := strconv.ParseInt(n.String(), 10, 64)
			return primitive.DateTime(ms), err
		}
	}
	// binData, regex, timestamp: left to FerretDB.
	return nil, errNotHere
}
