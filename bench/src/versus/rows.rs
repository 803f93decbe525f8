//! The rows of the table: what each measures, against what, and the
//! targets it must meet.

/// How wasqd and nsqd hold messages for a row.
#[derive(Clone, Copy)]
pub(super) enum Setup {
    /// Everything in memory (`--mem-queue-size 100000000` for both).
    Memory,
    /// nsqd's default `--mem-queue-size 10000`: the rest goes to disk.
    Spilling,
}

/// What better means for a row's figure.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Better {
    Higher,
    Lower,
}

pub(super) struct Row {
    pub id: &'static str,
    pub what: &'static str,
    pub unit: &'static str,
    pub better: Better,
    /// What wasqd is compared with.
    pub baseline: &'static str,
    /// wasqd must beat the baseline by this factor (in the row's sense of better).
    pub ratio_target: Option<f64>,
    /// wasqd's own figure must reach this (at least, or at most when lower is better).
    pub absolute_target: Option<f64>,
}

/// A throughput row against nsqd, higher is better.
const fn throughput(id: &'static str, what: &'static str, ratio: f64) -> Row {
    Row {
        id,
        what,
        unit: "msg/s",
        better: Better::Higher,
        baseline: "nsqd",
        ratio_target: Some(ratio),
        absolute_target: None,
    }
}

/// A throughput row against nsqd shown for reference, with no target: the
/// same work as a judged row, measured with a client whose own costs bound
/// every server's figure (its `of do-nothing` column shows how closely).
const fn reference(id: &'static str, what: &'static str) -> Row {
    Row {
        ratio_target: None,
        ..throughput(id, what, f64::NAN)
    }
}

pub(super) const ROWS: &[Row] = &[
    throughput(
        "tcp_mpub",
        "TCP publish, MPUB batches of 200, 4 connections",
        2.0,
    ),
    throughput(
        "tcp_sub",
        "TCP consume, RDY 2500, FIN each, 4 connections",
        2.0,
    ),
    throughput(
        "tcp_pub",
        "PUB round trip, one connection, one outstanding; the client polls its socket for the answer",
        1.5,
    ),
    reference(
        "tcp_pub_sleeping",
        "the same with a client that sleeps until the answer arrives (its vCPU's wake-up is in every figure)",
    ),
    throughput(
        "tcp_pub_pipelined",
        "PUB, 4 connections, 16 outstanding each; the PUBs that refill the window after one read go out in one write",
        2.0,
    ),
    reference(
        "tcp_pub_pipelined_write_each",
        "the same with a write per PUB (the client's own system calls bound every figure)",
    ),
    throughput(
        "http_pub",
        "HTTP /pub, one keep-alive connection; the client polls its socket for the answer",
        3.0,
    ),
    reference(
        "http_pub_sleeping",
        "the same with a client that sleeps until the answer arrives",
    ),
    throughput(
        "http_mpub",
        "HTTP /mpub, 200 per request, 4 connections",
        2.0,
    ),
    throughput(
        "spill_mpub",
        "spilling (--mem-queue-size 10000): MPUB 200, 4 connections",
        2.0,
    ),
    throughput(
        "spill_sub",
        "spilling (--mem-queue-size 10000): consume, 4 connections",
        2.0,
    ),
    throughput(
        "bench_writer",
        "NSQ's bench_writer --size=200 --batch-size=200 (its defaults: a connection per CPU, one MPUB in flight on each), memory queue, a channel present",
        2.0,
    ),
    throughput(
        "bench_reader",
        "NSQ's bench_reader --size=200 (its defaults: RDY 2500, a connection per CPU) on the backlog bench_writer left",
        2.0,
    ),
    throughput(
        "ab_pub_c1",
        "ApacheBench ab -k -c 1: HTTP /pub of 200 B on one keep-alive connection",
        3.0,
    ),
    throughput(
        "ab_pub_c4",
        "ApacheBench ab -k -c 4: HTTP /pub of 200 B on four keep-alive connections",
        2.0,
    ),
    throughput(
        "ab_mpub_c4",
        "ApacheBench ab -k -c 4: HTTP /mpub of 200 x 200 B (messages per second)",
        2.0,
    ),
    Row {
        id: "plugin_drain",
        what: "trivial plugin (FIN only) draining the backlog vs nsqd consumers draining it",
        unit: "msg/s",
        better: Better::Higher,
        baseline: "nsqd",
        ratio_target: Some(5.0),
        absolute_target: Some(3_000_000.0),
    },
    Row {
        id: "plugin_vs_consumer",
        what: "trivial plugin vs a tokio-nsq consumer (max_in_flight 2500) on the same wasqd",
        unit: "msg/s",
        better: Better::Higher,
        baseline: "tokio-nsq on wasqd",
        ratio_target: Some(3.0),
        absolute_target: None,
    },
    Row {
        id: "plugin_latency_p99",
        what: "publish -> plugin FIN at 50k msg/s (MPUB of 50 every ms), p99 of wasqd's e2e processing latency",
        unit: "ms",
        better: Better::Lower,
        baseline: "none",
        ratio_target: None,
        absolute_target: Some(1.0),
    },
    Row {
        id: "plugin_latency_p999",
        what: "publish -> plugin FIN at 50k msg/s, p99.9",
        unit: "ms",
        better: Better::Lower,
        baseline: "none",
        ratio_target: None,
        absolute_target: Some(5.0),
    },
    Row {
        id: "queued_bytes",
        what: "resident memory per queued 200 B message, backlog in one channel",
        unit: "B/msg",
        better: Better::Lower,
        baseline: "nsqd",
        ratio_target: None,
        absolute_target: Some(400.0),
    },
    Row {
        id: "idle_rss",
        what: "resident memory of an idle broker",
        unit: "MB",
        better: Better::Lower,
        baseline: "nsqd",
        ratio_target: None,
        absolute_target: Some(30.0),
    },
];
