;; {{name}}, in WebAssembly text (ABI v1, guest-sdk/ABI.md): consumes
;; `{{name}}` and publishes each body, its ASCII letters uppercased, to
;; `{{name}}.upper`. wasqd loads .wat files as they are: no build step.
(module
  ;; publish(topic_ptr, topic_len, body_ptr, body_len) -> status (0 = OK)
  (import "wasq" "publish" (func $publish (param i32 i32 i32 i32) (result i32)))
  ;; log(level, ptr, len) -> status; level 2 = warn
  (import "wasq" "log" (func $log (param i32 i32 i32) (result i32)))

  ;; 17 pages: room for the largest message wasqd's default --max-msg-size
  ;; (1 MiB) allows, with its header, topic and channel, from 1024 on.
  (memory (export "memory") 17)

  ;; Constant strings below 1024 (and their lengths in the calls below).
  (data (i32.const 16) "{{name}}.upper")
  (data (i32.const 512) "cannot publish to {{name}}.upper")

  (func (export "wasq_abi_version") (result i32) (i32.const 1))

  ;; One message at a time per instance: one fixed buffer at 1024, or 0
  ;; (the host retries later) for a message that does not fit.
  (func (export "wasq_alloc") (param $size i32) (result i32)
    (if (result i32)
        (i32.gt_u (local.get $size) (i32.sub (i32.const 1114112) (i32.const 1024)))
      (then (i32.const 0))
      (else (i32.const 1024))))

  ;; The header: u32 header_size at 0, u32 topic_len at 32, channel_len at
  ;; 36, body_len at 40; topic, channel and body follow the header.
  ;; Returns 0 SUCCESS (FIN) or 1 RETRY.
  (func (export "wasq_handle") (param $ptr i32) (param $len i32) (result i64)
    (local $body i32) (local $body_len i32) (local $at i32) (local $byte i32)
    (local.set $body
      (i32.add
        (i32.add (local.get $ptr) (i32.load (local.get $ptr)))
        (i32.add (i32.load offset=32 (local.get $ptr))
                 (i32.load offset=36 (local.get $ptr)))))
    (local.set $body_len (i32.load offset=40 (local.get $ptr)))
    (local.set $at (local.get $body))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $at)
                               (i32.add (local.get $body) (local.get $body_len))))
        (local.set $byte (i32.load8_u (local.get $at)))
        (if (i32.lt_u (i32.sub (local.get $byte) (i32.const 97)) (i32.const 26))
          (then (i32.store8 (local.get $at) (i32.sub (local.get $byte) (i32.const 32)))))
        (local.set $at (i32.add (local.get $at) (i32.const 1)))
        (br $next)))
    (if (i32.ne (call $publish (i32.const 16) (i32.const {{output_len}})
                               (local.get $body) (local.get $body_len))
                (i32.const 0))
      (then
        (drop (call $log (i32.const 2) (i32.const 512) (i32.const {{warning_len}})))
        (return (i64.const 1))))
    (i64.const 0)))
