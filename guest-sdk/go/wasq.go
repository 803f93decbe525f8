// Package wasq is the Go binding for Wasq plugins (ABI version 1, see
// ../ABI.md).
//
// A plugin is a main package that registers its handler in init:
//
//	func init() { wasq.Handle(handle) }
//	func main() {}
//
// and is built as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o NAME.wasm .
//
// The package exports wasq_abi_version, wasq_alloc, wasq_handle and
// wasq_handle_batch (many messages per call, ABI.md "Batches"); the host
// calls the reactor's _initialize (which runs init) once per instance.
//
// Config reads the manifest's [config] table and HTTPRequest sends an
// outbound request to a host in allowed_outbound_hosts (ABI.md, "Outbound
// HTTP and configuration"). StateGet, StateSet, StateDelete,
// StateIncrement and StateScan use the plugin's key-value store, granted
// by `state = true` (ABI.md, "State"); its writes commit with the
// message's Success and are discarded by any other outcome. Call them
// from the handler.
package wasq

import (
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unsafe"
)

// Message is one message as the broker delivered it. It and its slices
// are valid only while the handler runs (the bindings reuse one Message
// for the next): copy what you keep.
type Message struct {
	// Attempts is 1 on the first delivery, +1 on each redelivery.
	Attempts uint16
	// Timestamp is nanoseconds since the Unix epoch, when it was published.
	Timestamp int64
	ID        [16]byte
	Topic     string
	Channel   string
	Body      []byte
}

// Outcome tells the broker what to do with the message.
type Outcome int64

const (
	// Success: FIN.
	Success Outcome = 0
	// Retry: REQ with the broker's backoff; dead-lettered after max_attempts.
	Retry Outcome = 1
	// Fatal: publish the body unchanged to the dead-letter topic, then FIN.
	Fatal Outcome = 3
)

// RetryAfter is REQ after delayMs milliseconds.
func RetryAfter(delayMs uint32) Outcome {
	return Outcome(int64(uint64(delayMs)<<32 | 2))
}

// Errors of Publish and PublishDeferred (the ABI's statuses 1-6).
var (
	ErrForbidden    = errors.New("wasq: topic not in the manifest's publish list")
	ErrInvalidTopic = errors.New("wasq: invalid topic name")
	ErrInvalidBody  = errors.New("wasq: empty or too large body")
	ErrInvalidDelay = errors.New("wasq: delay out of range")
	ErrBadPointer   = errors.New("wasq: bad pointer")
	ErrUnavailable  = errors.New("wasq: broker unavailable")
)

// Log levels.
const (
	Debug int32 = 0
	Info  int32 = 1
	Warn  int32 = 2
	Error int32 = 3
)

//go:wasmimport wasq log
func hostLog(level int32, ptr unsafe.Pointer, length int32) int32

//go:wasmimport wasq publish
func hostPublish(topic unsafe.Pointer, topicLen int32, body unsafe.Pointer, bodyLen int32) int32

//go:wasmimport wasq publish_deferred
func hostPublishDeferred(topic unsafe.Pointer, topicLen int32, body unsafe.Pointer, bodyLen int32, delayMs int64) int32

func check(status int32) error {
	switch status {
	case 0:
		return nil
	case 1:
		return ErrForbidden
	case 2:
		return ErrInvalidTopic
	case 3:
		return ErrInvalidBody
	case 4:
		return ErrInvalidDelay
	case 5:
		return ErrBadPointer
	default:
		return ErrUnavailable
	}
}

func bytesPointer(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// Publish puts body on topic (listed under `publish` in the manifest).
func Publish(topic string, body []byte) error {
	t := []byte(topic)
	return check(hostPublish(bytesPointer(t), int32(len(t)), bytesPointer(body), int32(len(body))))
}

// PublishDeferred is DPUB: body reaches topic after delayMs.
func PublishDeferred(topic string, body []byte, delayMs int64) error {
	t := []byte(topic)
	return check(hostPublishDeferred(bytesPointer(t), int32(len(t)), bytesPointer(body), int32(len(body)), delayMs))
}

// Log writes a line to the host log under the plugin's name.
func Log(level int32, text string) {
	b := []byte(text)
	hostLog(level, bytesPointer(b), int32(len(b)))
}

var handler func(*Message) Outcome

// Handle registers the plugin's handler; call it from init.
func Handle(h func(*Message) Outcome) {
	handler = h
}

// scratch is the region handed to the host, reused message after message
// (Message's slices are valid only while the handler runs, as its doc
// says): a fresh allocation per message cost a trivial handler a third of
// its time in Go's allocator and collector. Holding it in a package
// variable also keeps the collector from freeing it between wasq_alloc
// and wasq_handle. A region above maxScratch is made for its message only,
// so one huge message does not pin its size for the instance's life.
var scratch []byte

// pending is the region wasq_alloc handed out last, checked by wasq_handle.
var pending []byte

const maxScratch = 64 << 10

//go:wasmexport wasq_abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport wasq_alloc
func alloc(size int32) uint32 {
	if size <= 0 {
		return 0
	}
	switch {
	case int(size) <= cap(scratch):
		pending = scratch[:size]
	case size <= maxScratch:
		scratch = make([]byte, size, max(size, 1024))
		pending = scratch
	default:
		pending = make([]byte, size)
	}
	return uint32(uintptr(unsafe.Pointer(&pending[0])))
}

// handed returns the region wasq_alloc handed out last if it is the one
// at ptr and holds length bytes, else nil (logged).
func handed(ptr uint32, length int32) []byte {
	buffer := pending
	pending = nil
	if buffer == nil || uint32(uintptr(unsafe.Pointer(&buffer[0]))) != ptr || length < 0 || int(length) > len(buffer) {
		Log(Error, "wasq: a call for a region wasq_alloc did not hand out")
		return nil
	}
	return buffer[:length]
}

// current is the Message handed to the handler, filled anew for each
// message: a heap allocation per message was two thirds of a trivial
// handler's call (772 ns, 246 without; bench/README.md).
var current Message

// run parses one message into current and calls the handler.
func run(b []byte) int64 {
	if !parseInto(&current, b) {
		Log(Error, "wasq: malformed message header")
		return int64(Retry)
	}
	if handler == nil {
		Log(Error, "wasq: no handler registered (call wasq.Handle in init)")
		return int64(Retry)
	}
	return int64(handler(&current))
}

//go:wasmexport wasq_handle
func handle(ptr uint32, length int32) int64 {
	buffer := handed(ptr, length)
	if buffer == nil {
		return int64(Retry)
	}
	return run(buffer)
}

// handleBatch takes many messages in one call (ABI.md, "Batches"): entry
// i of the table is 16 bytes, the outcome (written here, as soon as it is
// known) then the message's offset and length.
//
//go:wasmexport wasq_handle_batch
func handleBatch(ptr uint32, length int32, count int32) {
	buffer := handed(ptr, length)
	if buffer == nil {
		return
	}
	if count < 0 || int(count) > len(buffer)/16 {
		Log(Error, "wasq: malformed batch")
		return
	}
	le := binary.LittleEndian
	for i := 0; i < int(count); i++ {
		entry := buffer[i*16 : i*16+16]
		offset, size := uint64(le.Uint32(entry[8:])), uint64(le.Uint32(entry[12:]))
		outcome := int64(Retry)
		if offset <= uint64(len(buffer)) && size <= uint64(len(buffer))-offset {
			outcome = run(buffer[offset : offset+size])
		}
		le.PutUint64(entry, uint64(outcome))
	}
}

// The topic and channel of the previous message: a plugin's messages all
// come from one channel, so its names are made into strings once.
var lastTopic, lastChannel string

// reuse returns *last if it spells b (a comparison that allocates
// nothing), else makes b the new *last.
func reuse(last *string, b []byte) string {
	if string(b) != *last {
		*last = string(b)
	}
	return *last
}

// Parse reads the ABI's message layout into a new Message; false if it is
// malformed.
func Parse(b []byte) (*Message, bool) {
	m := &Message{}
	if !parseInto(m, b) {
		return nil, false
	}
	return m, true
}

// parseInto reads the ABI's message layout into m; false if it is malformed.
func parseInto(m *Message, b []byte) bool {
	if len(b) < 48 {
		return false
	}
	le := binary.LittleEndian
	header := uint64(le.Uint32(b[0:]))
	topicLen := uint64(le.Uint32(b[32:]))
	channelLen := uint64(le.Uint32(b[36:]))
	bodyLen := uint64(le.Uint32(b[40:]))
	if header < 48 || header > uint64(len(b)) || topicLen+channelLen+bodyLen != uint64(len(b))-header {
		return false
	}
	data := b[header:]
	m.Attempts = le.Uint16(b[4:])
	m.Timestamp = int64(le.Uint64(b[8:]))
	m.Topic = reuse(&lastTopic, data[:topicLen])
	m.Channel = reuse(&lastChannel, data[topicLen:topicLen+channelLen])
	m.Body = data[topicLen+channelLen:]
	copy(m.ID[:], b[16:32])
	return true
}

// StatusError is a status the configuration, HTTP and state imports
// returned (the ABI's statuses 7-20, and 5). The Err values below are
// *StatusErrors: test with errors.Is(err, wasq.ErrTimeout), or take the
// status with errors.As.
type StatusError struct {
	// Status is the ABI's status: 7 NOT_FOUND ... 15 BUSY, 16 NO_STATE ...
	// 20 NOT_A_NUMBER.
	Status int32
}

// Errors of Config and HTTPRequest (the ABI's statuses 7-15).
var (
	ErrNotFound       = &StatusError{7}  // no such [config] key, or no such response
	ErrNotAllowed     = &StatusError{8}  // URL (or a redirect) not in allowed_outbound_hosts
	ErrTimeout        = &StatusError{9}  // no whole response within http_timeout_ms
	ErrDNS            = &StatusError{10} // the host name does not resolve
	ErrConnect        = &StatusError{11} // connection refused or failed, or TLS handshake failed
	ErrTooLarge       = &StatusError{12} // response body over http_max_response_kib
	ErrInvalidRequest = &StatusError{13} // a method, URL or header line the host cannot send
	ErrIO             = &StatusError{14} // the connection broke, or the answer was not HTTP/1.x; or the state store failed
	ErrBusy           = &StatusError{15} // 16 responses not read yet
)

// Errors of the state functions (the ABI's statuses 16-20; also ErrIO,
// the store failed). A key with no value is not an error: StateGet
// reports it with its bool, StateDelete with false.
var (
	ErrNoState       = &StatusError{16} // the manifest does not set `state = true`
	ErrInvalidKey    = &StatusError{17} // an empty key, or one longer than state_max_key_bytes
	ErrValueTooLarge = &StatusError{18} // a value longer than state_max_value_kib
	ErrStateFull     = &StatusError{19} // the plugin's state would exceed state_limit_mib
	ErrNotANumber    = &StatusError{20} // StateIncrement of a value not a decimal int64, or overflow
)

var statusTexts = [...]string{
	5:  "bad pointer",
	7:  "not found",
	8:  "URL not in allowed_outbound_hosts",
	9:  "HTTP request timed out",
	10: "host name does not resolve",
	11: "connection failed",
	12: "HTTP response too large",
	13: "invalid HTTP request",
	14: "I/O error (a broken connection, an answer not HTTP/1.x, or the state store failed)",
	15: "too many unread HTTP responses",
	16: "no state (the manifest does not set state = true)",
	17: "invalid state key (empty, or longer than state_max_key_bytes)",
	18: "state value too large (over state_max_value_kib)",
	19: "state full (over state_limit_mib)",
	20: "state value not a decimal int64, or the sum overflows",
}

func (e *StatusError) Error() string {
	if e.Status >= 0 && int(e.Status) < len(statusTexts) && statusTexts[e.Status] != "" {
		return "wasq: " + statusTexts[e.Status]
	}
	return "wasq: status " + strconv.Itoa(int(e.Status))
}

// Temporary reports whether the request may succeed if tried again:
// TIMEOUT, DNS, CONNECT, IO and BUSY are; NOT_ALLOWED, TOO_LARGE,
// INVALID_REQUEST, the state statuses but IO, and the others are not.
func (e *StatusError) Temporary() bool {
	switch e.Status {
	case 9, 10, 11, 14, 15:
		return true
	}
	return false
}

// Timeout reports whether the request timed out (as net.Error's).
func (e *StatusError) Timeout() bool { return e.Status == 9 }

// Is makes errors.Is match any *StatusError of the same status (and
// status 5 match ErrBadPointer).
func (e *StatusError) Is(target error) bool {
	if t, ok := target.(*StatusError); ok {
		return t.Status == e.Status
	}
	return e.Status == 5 && target == ErrBadPointer
}

func statusError(status int32) error {
	for _, err := range [...]*StatusError{ErrNotFound, ErrNotAllowed, ErrTimeout, ErrDNS, ErrConnect,
		ErrTooLarge, ErrInvalidRequest, ErrIO, ErrBusy, ErrNoState, ErrInvalidKey, ErrValueTooLarge,
		ErrStateFull, ErrNotANumber} {
		if err.Status == status {
			return err
		}
	}
	return &StatusError{status}
}

//go:wasmimport wasq config_get
func hostConfigGet(key unsafe.Pointer, keyLen int32, buf unsafe.Pointer, bufCap int32) int32

//go:wasmimport wasq http_request
func hostHTTPRequest(method unsafe.Pointer, methodLen int32, url unsafe.Pointer, urlLen int32,
	headers unsafe.Pointer, headersLen int32, body unsafe.Pointer, bodyLen int32, response unsafe.Pointer) int32

//go:wasmimport wasq http_response_read
func hostHTTPResponseRead(handle uint32, headers unsafe.Pointer, headersCap int32, body unsafe.Pointer, bodyCap int32) int32

// stringPointer is where s's bytes are, for the host to read (strings are
// immutable, so no copy is needed; s stays referenced during the call).
func stringPointer(s string) unsafe.Pointer {
	return unsafe.Pointer(unsafe.StringData(s))
}

// Config returns the value of key in the manifest's [config] table, and
// whether it is set.
func Config(key string) (string, bool) {
	var small [256]byte // most values fit: one call
	n := hostConfigGet(stringPointer(key), int32(len(key)), unsafe.Pointer(&small[0]), int32(len(small)))
	if n < 0 {
		return "", false
	}
	if int(n) <= len(small) {
		return string(small[:n]), true
	}
	value := make([]byte, n)
	if hostConfigGet(stringPointer(key), int32(len(key)), unsafe.Pointer(&value[0]), n) != n {
		return "", false // cannot happen: [config] is fixed for a version
	}
	return unsafe.String(&value[0], len(value)), true
}

// Header is a set of HTTP header fields, names in lower case (the host
// gives a response's names in lower case; Get, Set, Add and Del
// lower-case the name they are given).
type Header map[string][]string

// Get returns the first value of the field called name (any case), or "".
func (h Header) Get(name string) string {
	if values := h[strings.ToLower(name)]; len(values) > 0 {
		return values[0]
	}
	return ""
}

// Values returns every value of the field called name (any case).
func (h Header) Values(name string) []string { return h[strings.ToLower(name)] }

// Set makes value the only value of the field called name.
func (h Header) Set(name, value string) { h[strings.ToLower(name)] = []string{value} }

// Add adds value to the field called name.
func (h Header) Add(name, value string) {
	name = strings.ToLower(name)
	h[name] = append(h[name], value)
}

// Del removes the field called name.
func (h Header) Del(name string) { delete(h, strings.ToLower(name)) }

// Response is a whole HTTP response.
type Response struct {
	// StatusCode is the HTTP status: 200, 404, 503, ...
	StatusCode int
	// Header holds the response's fields, names in lower case.
	Header Header
	Body   []byte
}

// RetryAfter returns the delay a `retry-after` field asks for, in
// milliseconds (at most 2^32-1), when it holds delta-seconds (a
// non-negative integer); false when there is none or it is an HTTP date.
func (r *Response) RetryAfter() (delayMs uint32, ok bool) {
	value := r.Header.Get("retry-after")
	if value == "" || strings.Trim(value, "0123456789") != "" {
		return 0, false
	}
	seconds, err := strconv.ParseUint(value, 10, 64)
	if err != nil || seconds > (1<<32-1)/1000 {
		return 1<<32 - 1, true // more digits than fit: the host caps the delay anyway
	}
	return uint32(seconds * 1000), true
}

// HTTPRequest sends one request (method "GET", "POST", ...; url absolute,
// http:// or https://, to a host in allowed_outbound_hosts) and returns
// the whole response, whatever its HTTP status: a 4xx or 5xx is not an
// error here. header may be nil, body empty. The error is a *StatusError
// (ErrNotAllowed, ErrTimeout, ...; see Temporary).
func HTTPRequest(method, url string, header Header, body []byte) (*Response, error) {
	var lines []byte
	for _, name := range slices.Sorted(maps.Keys(header)) { // the same request, the same bytes
		for _, value := range header[name] {
			if strings.ContainsAny(name, "\r\n:") || strings.ContainsAny(value, "\r\n") {
				return nil, ErrInvalidRequest // would split into another line
			}
			lines = append(append(append(append(lines, name...), ": "...), value...), '\n')
		}
	}
	var record [4]uint32 // handle, status, headers_len, body_len
	status := hostHTTPRequest(stringPointer(method), int32(len(method)), stringPointer(url), int32(len(url)),
		bytesPointer(lines), int32(len(lines)), bytesPointer(body), int32(len(body)), unsafe.Pointer(&record[0]))
	if status != 0 {
		return nil, statusError(status)
	}
	head := make([]byte, record[2])
	response := &Response{StatusCode: int(record[1]), Header: Header{}, Body: make([]byte, record[3])}
	status = hostHTTPResponseRead(record[0], bytesPointer(head), int32(len(head)),
		bytesPointer(response.Body), int32(len(response.Body)))
	if status != 0 {
		return nil, statusError(status)
	}
	for line := range strings.SplitSeq(string(head), "\n") {
		name, value, ok := strings.Cut(strings.TrimSuffix(line, "\r"), ":")
		if ok && name != "" {
			response.Header.Add(strings.TrimSpace(name), strings.Trim(value, " \t"))
		}
	}
	return response, nil
}

//go:wasmimport wasq state_get
func hostStateGet(key unsafe.Pointer, keyLen int32, buf unsafe.Pointer, bufCap int32) int32

//go:wasmimport wasq state_set
func hostStateSet(key unsafe.Pointer, keyLen int32, value unsafe.Pointer, valueLen int32) int32

//go:wasmimport wasq state_delete
func hostStateDelete(key unsafe.Pointer, keyLen int32) int32

//go:wasmimport wasq state_increment
func hostStateIncrement(key unsafe.Pointer, keyLen int32, by int64, result unsafe.Pointer) int32

//go:wasmimport wasq state_scan
func hostStateScan(prefix unsafe.Pointer, prefixLen int32, limit int32, buf unsafe.Pointer, bufCap int32) int32

// The state functions use the plugin's key-value store (ABI.md, "State";
// the manifest grants it with `state = true`, else every call is
// ErrNoState). Keys and values are bytes; a key is 1 to
// state_max_key_bytes long. A handler call reads its own writes; nobody
// else sees them until the handler returns Success, when they commit
// together with the message's FIN. Retry, RetryAfter, Fatal, a trap or a
// timeout discard them. Their errors are *StatusErrors: ErrNoState,
// ErrInvalidKey, ErrValueTooLarge, ErrStateFull, ErrNotANumber, ErrIO.

// StateGet returns the value of key as this handler call sees it, and
// whether key has one (a value may be empty). The value is the caller's.
func StateGet(key []byte) ([]byte, bool, error) {
	var small [256]byte // most values fit: one call
	buffer := small[:]
	for {
		n := hostStateGet(bytesPointer(key), int32(len(key)), unsafe.Pointer(&buffer[0]), int32(len(buffer)))
		switch {
		case n == -7: // NOT_FOUND: no value
			return nil, false, nil
		case n < 0:
			return nil, false, statusError(-n)
		case int(n) > len(buffer):
			buffer = make([]byte, n) // nothing was written: again, with room (in a loop: it may grow meanwhile)
		case &buffer[0] == &small[0]:
			return append(make([]byte, 0, n), small[:n]...), true, nil // the caller's copy
		default:
			return buffer[:n:n], true, nil // made for it: the caller's already
		}
	}
}

// StateSet sets key to value (an empty value is a value, not a deletion).
func StateSet(key, value []byte) error {
	if status := hostStateSet(bytesPointer(key), int32(len(key)), bytesPointer(value), int32(len(value))); status != 0 {
		return statusError(status)
	}
	return nil
}

// StateDelete removes key; true if it had a value.
func StateDelete(key []byte) (bool, error) {
	switch status := hostStateDelete(bytesPointer(key), int32(len(key))); status {
	case 0:
		return true, nil
	case 7: // NOT_FOUND: it had none
		return false, nil
	default:
		return false, statusError(status)
	}
}

// StateIncrement adds by (which may be negative) to the counter at key (a
// key with no value counts as 0) and returns the new value. A counter is
// kept as decimal text ("42"): StateGet reads it as text, and StateSet of
// "7" sets it. ErrNotANumber if the value is not a decimal int64, or the
// sum overflows.
func StateIncrement(key []byte, by int64) (int64, error) {
	var result int64
	if status := hostStateIncrement(bytesPointer(key), int32(len(key)), by, unsafe.Pointer(&result)); status != 0 {
		return 0, statusError(status)
	}
	return result, nil
}

// StateEntry is a key and its value, as StateScan lists them.
type StateEntry struct {
	Key   []byte
	Value []byte
}

// MaxStateScan is the most entries one StateScan lists.
const MaxStateScan = 10000

// StateScan lists up to limit entries (at most MaxStateScan: a larger
// limit is taken as MaxStateScan; 0 or less lists none) whose keys start
// with prefix (empty: every key), in bytewise key order, as this handler
// call sees them. To go through more keys, scan again with a longer
// prefix, or keep an index key. The entries are the caller's.
func StateScan(prefix []byte, limit int) ([]StateEntry, error) {
	limit = max(0, min(limit, MaxStateScan))
	buffer := make([]byte, 1024)
	for {
		n := hostStateScan(bytesPointer(prefix), int32(len(prefix)), int32(limit),
			unsafe.Pointer(&buffer[0]), int32(len(buffer)))
		if n < 0 {
			return nil, statusError(-n)
		}
		if int(n) <= len(buffer) {
			return decodeEntries(buffer[:n])
		}
		// Nothing was written: again, with room. The state may change
		// before the next call (another instance commits), so with some
		// to spare, and in a loop.
		buffer = make([]byte, int(n)+int(n)/4)
	}
}

var errMalformedScan = errors.New("wasq: malformed state_scan result")

// decodeEntries reads state_scan's records (u32 key_len, u32 value_len,
// the key, the value; little-endian). The entries' slices share b, each
// capped at its own end, so appending to one does not write over the next.
func decodeEntries(b []byte) ([]StateEntry, error) {
	var entries []StateEntry
	le := binary.LittleEndian
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, errMalformedScan
		}
		keyLen, valueLen := uint64(le.Uint32(b)), uint64(le.Uint32(b[4:]))
		b = b[8:]
		if keyLen+valueLen > uint64(len(b)) {
			return nil, errMalformedScan
		}
		end := keyLen + valueLen
		entries = append(entries, StateEntry{Key: b[:keyLen:keyLen], Value: b[keyLen:end:end]})
		b = b[end:]
	}
	return entries, nil
}
