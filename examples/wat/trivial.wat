;; trivial, by hand in WebAssembly text: finishes every message and does
;; nothing else. The floor every language's trivial is measured against
;; (wasq-bench guests): one fixed buffer, no allocator, no glue.
(module
  (memory (export "memory") 17)
  (func (export "wasq_abi_version") (result i32) (i32.const 1))
  ;; One call at a time per instance: one fixed buffer at 1024 does;
  ;; 0 (too big for it) asks the host to retry later.
  (func (export "wasq_alloc") (param $size i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $size) (i32.const 1112064))
      (then (i32.const 0))
      (else (i32.const 1024))))
  ;; SUCCESS (0): FIN.
  (func (export "wasq_handle") (param $ptr i32) (param $len i32) (result i64)
    (i64.const 0))
  ;; A batch (ABI.md, "Batches"): SUCCESS into the outcome of each of the
  ;; `count` entries of the table at `ptr`, 16 bytes apart.
  (func (export "wasq_handle_batch") (param $ptr i32) (param $len i32) (param $count i32)
    (local $end i32)
    (local.set $end (i32.add (local.get $ptr) (i32.shl (local.get $count) (i32.const 4))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $ptr) (local.get $end)))
        (i64.store (local.get $ptr) (i64.const 0))
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 16)))
        (br $next)))))
