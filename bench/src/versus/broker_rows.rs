//! The rows measured the same way on either broker (wasqd, nsqd or the
//! do-nothing OK server): publish, consume, round trips, memory.

use std::net::SocketAddr;
use std::time::Duration;

use super::broker::Broker;
use super::tool_rows::{Target, is_tool_row, tool_row};
use super::{SINGLE_ROUND_TRIPS, VersusArgs};
use crate::http_load;
use crate::plugin::unique;
use crate::spinning_client;
use crate::workload::{PubWrites, Workload, mpub_phase, prepare_backlog, pub_phase, sub_phase};
use wasq_testkit::memory::resident_bytes;

/// The single round trips of `tcp_pub` and `http_pub` with the client that
/// polls its socket, on a thread of their own.
async fn spinning(
    addr: SocketAddr,
    greeting: &'static [u8],
    request: Vec<u8>,
    answer_length: fn(&[u8]) -> anyhow::Result<Option<usize>>,
) -> anyhow::Result<f64> {
    tokio::task::spawn_blocking(move || {
        spinning_client::round_trips(addr, greeting, &request, SINGLE_ROUND_TRIPS, answer_length)
    })
    .await?
}

/// A row measured the same way on either broker.
pub(super) async fn broker_row(
    id: &str,
    args: &VersusArgs,
    workload: &Workload,
    broker: &Broker,
) -> anyhow::Result<f64> {
    let topic = format!("bench_{id}_{}", unique());
    let messages = Workload {
        messages: args.messages,
        batch: 200,
        publishers: 4,
        consumers: 4,
        ..workload.clone()
    };
    let size = workload.size;
    match id {
        "tcp_mpub" | "spill_mpub" => mpub_phase(&messages, broker.tcp, &topic).await,
        "tcp_sub" | "spill_sub" => {
            prepare_backlog(&messages, broker.tcp, &topic).await?;
            sub_phase(&messages, broker.tcp, &topic).await
        }
        "backlog_sub" => {
            let backlog = Workload {
                messages: args.backlog,
                ..messages
            };
            prepare_backlog(&backlog, broker.tcp, &topic).await?;
            sub_phase(&backlog, broker.tcp, &topic).await
        }
        "tcp_pub" => {
            let request = wasq_wire::command::encode(|out| {
                wasq_wire::command::publish(out, &topic, &vec![b'x'; size])
            });
            spinning(broker.tcp, b"  V2", request, spinning_client::nsq_ok_length).await
        }
        "http_pub" => {
            let request = http_load::pub_request(&topic, size);
            spinning(broker.http, b"", request, http_load::complete_response).await
        }
        "tcp_pub_sleeping" => {
            let single = Workload {
                pub_messages: SINGLE_ROUND_TRIPS,
                pub_connections: 1,
                pub_window: 1,
                ..messages
            };
            pub_phase(&single, broker.tcp, &topic, PubWrites::PerRead).await
        }
        "tcp_pub_pipelined" | "tcp_pub_pipelined_write_each" => {
            let pipelined = Workload {
                pub_messages: 200_000,
                pub_connections: 4,
                pub_window: 16,
                ..messages
            };
            let writes = if id == "tcp_pub_pipelined" {
                PubWrites::PerRead
            } else {
                PubWrites::PerPub
            };
            pub_phase(&pipelined, broker.tcp, &topic, writes).await
        }
        "http_pub_sleeping" => {
            let request = http_load::pub_request(&topic, size);
            http_load::publish(broker.http, request, 1, 1, SINGLE_ROUND_TRIPS).await
        }
        "http_mpub" => {
            let request = http_load::mpub_request(&topic, size, 200);
            let per_connection = args.messages / (4 * 200);
            http_load::publish(broker.http, request, 200, 4, per_connection).await
        }
        "queued_bytes" => {
            let backlog = Workload {
                messages: args.backlog,
                ..messages
            };
            // The channel first, so the messages are queued in it.
            prepare_backlog(
                &Workload {
                    messages: 0,
                    ..backlog.clone()
                },
                broker.tcp,
                &topic,
            )
            .await?;
            let before = resident_bytes(broker.pid)?;
            mpub_phase(&backlog, broker.tcp, &topic).await?;
            let after = resident_bytes(broker.pid)?;
            Ok(after.saturating_sub(before) as f64 / args.backlog as f64)
        }
        "idle_rss" => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(resident_bytes(broker.pid)? as f64 / 1e6)
        }
        id if is_tool_row(id) => tool_row(id, args, workload, broker, &topic, Target::Broker).await,
        other => anyhow::bail!("no row {other}"),
    }
}
