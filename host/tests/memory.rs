//! Memory, black-box: 10 000 messages of 200 bytes queued in a fresh wasqd
//! by each route a message can arrive by, with the broker's resident growth
//! (from /proc) checked against a bound per message.
//!
//! The publishing routes are bounded at 0.5 KB a message: a body copied out
//! of its buffer costs about 0.3 KB (the body, its allocation and the
//! queue's slot), while a body that kept the buffer it arrived in alive cost
//! 0.7 KB (TCP, ten to a connection) to 12 KB (HTTP /pub) before. Routes
//! that hold a message in flight or deferred also pay for those structures
//! (0.4-0.5 KB in all) and are bounded at 0.9 KB. A restored backlog is
//! measured from before the first wasqd was given it, so it also pays for
//! what the restart's read-back left free in malloc (0.6-1.0 KB in all):
//! bounded at 1.5 KB.

use wasq_testkit::memory::Route;

const MESSAGES: usize = 10_000;
const SIZE: usize = 200;

fn check(route: Route, bound_per_message: f64) {
    let growth = route
        .measure(MESSAGES, SIZE)
        .unwrap_or_else(|e| panic!("{}: {e:#}", route.describe()));
    eprintln!(
        "{}: {:.0} bytes per message ({} -> {} bytes resident)",
        route.describe(),
        growth.per_message(),
        growth.before,
        growth.after
    );
    assert!(
        growth.per_message() <= bound_per_message,
        "{}: {:.0} bytes resident per queued {SIZE}-byte message, bound {bound_per_message:.0} ({} -> {} bytes)",
        route.describe(),
        growth.per_message(),
        growth.before,
        growth.after
    );
}

/// A queued message published by a client or a plugin.
const PUBLISHED: f64 = 500.0;
/// A message held in flight or deferred.
const HELD: f64 = 900.0;
/// A message restored at start-up and held in flight.
const RESTORED: f64 = 1500.0;

#[test]
fn tcp_pub_pipelined() {
    check(Route::TcpPipelined, PUBLISHED);
}

#[test]
fn tcp_pub_round_trips() {
    check(Route::TcpRoundTrip, PUBLISHED);
}

#[test]
fn tcp_pub_on_short_connections() {
    check(Route::TcpConnections, PUBLISHED);
}

#[test]
fn tcp_mpub() {
    check(Route::TcpMpub, PUBLISHED);
}

#[test]
fn tcp_dpub() {
    check(Route::TcpDpub, PUBLISHED);
}

#[test]
fn http_pub_keep_alive() {
    check(Route::HttpPub, PUBLISHED);
}

#[test]
fn http_pub_new_connections() {
    check(Route::HttpPubConnections, PUBLISHED);
}

#[test]
fn http_mpub_text() {
    check(Route::HttpMpub, PUBLISHED);
}

#[test]
fn http_mpub_binary() {
    check(Route::HttpMpubBinary, PUBLISHED);
}

#[test]
fn plugin_publish() {
    check(Route::PluginPublish, PUBLISHED);
}

#[test]
fn dead_letter() {
    check(Route::DeadLetter, PUBLISHED);
}

#[test]
fn requeue_with_delay() {
    check(Route::Requeue, HELD);
}

#[test]
fn held_in_flight() {
    check(Route::InFlight, HELD);
}

#[test]
fn read_back_from_disk() {
    check(Route::DiskReadBack, HELD);
}

#[test]
fn restored_at_start_up() {
    check(Route::Restored, RESTORED);
}
