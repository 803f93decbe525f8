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
package wasq

import (
	"encoding/binary"
	"errors"
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
