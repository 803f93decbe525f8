;; flaky, written by hand in WebAssembly text: consumes `jobs`. A body that
;; contains "fail" asks to be retried (outcome 1, RETRY), so after the
;; manifest's max_attempts it lands in the dead-letter topic; any other
;; body is published to `jobs.done.wat`.
(module
  (import "wasq" "publish" (func $publish (param i32 i32 i32 i32) (result i32)))
  (import "wasq" "log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 17)
  (data (i32.const 16) "jobs.done.wat")         ;; 13 bytes
  (data (i32.const 64) "job failed, retrying")  ;; 20 bytes

  (func (export "wasq_abi_version") (result i32) (i32.const 1))

  ;; One fixed buffer at 1024, as in uppercase.wat.
  (func (export "wasq_alloc") (param $size i32) (result i32)
    (if (result i32)
        (i32.gt_u (local.get $size) (i32.sub (i32.const 1114112) (i32.const 1024)))
      (then (i32.const 0))
      (else (i32.const 1024))))

  ;; True if the `len` bytes at `at` contain "fail" (as a little-endian
  ;; i32: 'f' 0x66, 'a' 0x61, 'i' 0x69, 'l' 0x6c).
  (func $contains_fail (param $at i32) (param $len i32) (result i32)
    (local $end i32)
    (if (i32.lt_u (local.get $len) (i32.const 4)) (then (return (i32.const 0))))
    (local.set $end (i32.sub (i32.add (local.get $at) (local.get $len)) (i32.const 4)))
    (block $no
      (loop $next
        (br_if $no (i32.gt_u (local.get $at) (local.get $end)))
        (if (i32.eq (i32.load (local.get $at)) (i32.const 0x6c696166))
          (then (return (i32.const 1))))
        (local.set $at (i32.add (local.get $at) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  (func (export "wasq_handle") (param $ptr i32) (param $len i32) (result i64)
    (local $body i32) (local $body_len i32)
    (local.set $body
      (i32.add
        (i32.add (local.get $ptr) (i32.load (local.get $ptr)))
        (i32.add (i32.load offset=32 (local.get $ptr))
                 (i32.load offset=36 (local.get $ptr)))))
    (local.set $body_len (i32.load offset=40 (local.get $ptr)))
    (if (call $contains_fail (local.get $body) (local.get $body_len))
      (then
        (drop (call $log (i32.const 1) (i32.const 64) (i32.const 20)))
        (return (i64.const 1))))
    (if (i32.ne (call $publish (i32.const 16) (i32.const 13)
                               (local.get $body) (local.get $body_len))
                (i32.const 0))
      (then (return (i64.const 1))))
    (i64.const 0)))
