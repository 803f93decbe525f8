;; uppercase, written by hand in WebAssembly text: the executable reference
;; for guest-sdk/ABI.md. Consumes `words` and publishes each body, with its
;; ASCII letters uppercased, to `words.upper.wat`.
;;
;; The host loads .wat files as they are (plugins/NAME.wat beside NAME.toml);
;; no build step. The manifest must list the output topic:
;;     topic = "words"
;;     publish = ["words.upper.wat"]
(module
  ;; Imports from the host, module "wasq" (ABI.md, "Imports").
  ;; publish(topic_ptr, topic_len, body_ptr, body_len) -> status (0 = OK)
  (import "wasq" "publish" (func $publish (param i32 i32 i32 i32) (result i32)))
  ;; log(level, ptr, len) -> status; level 2 = warn
  (import "wasq" "log" (func $log (param i32 i32 i32) (result i32)))

  ;; 17 pages (1088 KiB): room for the largest message nsqd's default
  ;; --max-msg-size (1 MiB) allows, plus its header, topic and channel.
  (memory (export "memory") 17)

  ;; Constant strings below 1024; messages are written from 1024 on.
  (data (i32.const 16) "words.upper.wat")                    ;; 15 bytes
  (data (i32.const 64) "cannot publish to words.upper.wat")  ;; 33 bytes

  ;; Must return 1: the ABI version this module speaks.
  (func (export "wasq_abi_version") (result i32) (i32.const 1))

  ;; The host asks for `size` bytes to write one message into. One message
  ;; is handled at a time per instance, so one fixed buffer at 1024 does;
  ;; 0 (too big) tells the host to retry the message later.
  (func (export "wasq_alloc") (param $size i32) (result i32)
    (if (result i32)
        (i32.gt_u (local.get $size) (i32.sub (i32.const 1114112) (i32.const 1024)))
      (then (i32.const 0))
      (else (i32.const 1024))))

  ;; One message at ptr..ptr+len. The header (ABI.md, "The message layout"):
  ;; u32 header_size at 0, u16 attempts at 4, i64 timestamp at 8, id at 16,
  ;; u32 topic_len at 32, u32 channel_len at 36, u32 body_len at 40; then the
  ;; topic, the channel and the body, from ptr + header_size.
  ;; Returns the outcome: 0 SUCCESS (FIN), 1 RETRY (REQ with backoff).
  (func (export "wasq_handle") (param $ptr i32) (param $len i32) (result i64)
    (local $body i32) (local $body_len i32) (local $at i32) (local $byte i32)
    ;; body = ptr + header_size + topic_len + channel_len
    (local.set $body
      (i32.add
        (i32.add (local.get $ptr) (i32.load (local.get $ptr)))
        (i32.add (i32.load offset=32 (local.get $ptr))
                 (i32.load offset=36 (local.get $ptr)))))
    (local.set $body_len (i32.load offset=40 (local.get $ptr)))
    ;; Uppercase in place: the buffer is ours until we return.
    (local.set $at (local.get $body))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $at)
                               (i32.add (local.get $body) (local.get $body_len))))
        (local.set $byte (i32.load8_u (local.get $at)))
        ;; 'a'..='z' -> subtract 32
        (if (i32.lt_u (i32.sub (local.get $byte) (i32.const 97)) (i32.const 26))
          (then (i32.store8 (local.get $at) (i32.sub (local.get $byte) (i32.const 32)))))
        (local.set $at (i32.add (local.get $at) (i32.const 1)))
        (br $next)))
    (if (i32.ne (call $publish (i32.const 16) (i32.const 15)
                               (local.get $body) (local.get $body_len))
                (i32.const 0))
      (then
        (drop (call $log (i32.const 2) (i32.const 64) (i32.const 33)))
        (return (i64.const 1))))
    (i64.const 0)))
