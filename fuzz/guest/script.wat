;; The fuzzing guest: its message body is a script of ABI calls the host
;; must survive. Every 28 bytes are one call: op (i32: 0 publish,
;; 1 publish_deferred, 2 log, else nothing), then a, b, c, d (i32) and
;; delay (i64). Pointers are taken relative to the body's address (so the
;; fuzzer reaches valid, edge and invalid regions alike): publish(body+a, b,
;; body+c, d [, delay]); log(a, body+b, c). The last 8 bytes of a body of 8
;; or more are the outcome wasq_handle returns.
(module
  (import "wasq" "log" (func $log (param i32 i32 i32) (result i32)))
  (import "wasq" "publish" (func $publish (param i32 i32 i32 i32) (result i32)))
  (import "wasq" "publish_deferred" (func $publish_deferred (param i32 i32 i32 i32 i64) (result i32)))
  (memory (export "memory") 2)
  (func (export "wasq_abi_version") (result i32) (i32.const 1))
  (func (export "wasq_alloc") (param $size i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $size) (i32.const 64512))
      (then (i32.const 0)) (else (i32.const 1024))))
  (func (export "wasq_handle") (param $ptr i32) (param $len i32) (result i64)
    (local $body i32) (local $body_len i32) (local $at i32) (local $op i32)
    (local.set $body (i32.add (i32.add (local.get $ptr) (i32.load (local.get $ptr)))
      (i32.add (i32.load offset=32 (local.get $ptr)) (i32.load offset=36 (local.get $ptr)))))
    (local.set $body_len (i32.load offset=40 (local.get $ptr)))
    (local.set $at (local.get $body))
    (block $done
      (loop $next
        (br_if $done (i32.gt_u (i32.add (i32.sub (local.get $at) (local.get $body)) (i32.const 28))
                               (local.get $body_len)))
        (local.set $op (i32.load (local.get $at)))
        (if (i32.eqz (local.get $op))
          (then (drop (call $publish
            (i32.add (local.get $body) (i32.load offset=4 (local.get $at)))
            (i32.load offset=8 (local.get $at))
            (i32.add (local.get $body) (i32.load offset=12 (local.get $at)))
            (i32.load offset=16 (local.get $at))))))
        (if (i32.eq (local.get $op) (i32.const 1))
          (then (drop (call $publish_deferred
            (i32.add (local.get $body) (i32.load offset=4 (local.get $at)))
            (i32.load offset=8 (local.get $at))
            (i32.add (local.get $body) (i32.load offset=12 (local.get $at)))
            (i32.load offset=16 (local.get $at))
            (i64.load offset=20 (local.get $at))))))
        (if (i32.eq (local.get $op) (i32.const 2))
          (then (drop (call $log
            (i32.load offset=4 (local.get $at))
            (i32.add (local.get $body) (i32.load offset=8 (local.get $at)))
            (i32.load offset=12 (local.get $at))))))
        (local.set $at (i32.add (local.get $at) (i32.const 28)))
        (br $next)))
    (if (result i64) (i32.ge_u (local.get $body_len) (i32.const 8))
      (then (i64.load (i32.sub (i32.add (local.get $body) (local.get $body_len)) (i32.const 8))))
      (else (i64.const 0)))))
