//! One round of a row: which brokers it starts, in which order, and the
//! do-nothing server some rows are measured against as well.

use super::VersusArgs;
use super::broker::Broker;
use super::broker_rows::broker_row;
use super::figure::{Figure, NO_FIGURE, figure};
use super::plugin_rows::{plugin_latency, start_trivial};
use super::rows::Setup;
use super::tool_rows::{Target, is_tool_row, tool_row};
use crate::nsqd::Nsqd;
use crate::ok_server::{OkServer, Protocol};
use crate::plugin::tokio_nsq_drain;
use crate::workload::Workload;
use crate::{IN_MEMORY, spawn_wasqd};

/// One round of a row: (wasqd's figure, the baseline's). `baseline_first`
/// alternates the order so neither side always runs on a cooler machine.
pub(super) async fn measure(
    id: &str,
    args: &VersusArgs,
    workload: &Workload,
    baseline_first: bool,
) -> anyhow::Result<(Figure, Figure)> {
    if let Some(quantile) = match id {
        "plugin_latency_p99" => Some(0.99),
        "plugin_latency_p999" => Some(0.999),
        _ => None,
    } {
        let ours = figure(plugin_latency(quantile, workload.size)).await?;
        return Ok((ours, NO_FIGURE));
    }
    if id == "plugin_vs_consumer" {
        let trivial = start_trivial()?;
        let ours = || figure(trivial.drain(args.backlog, workload.size));
        let theirs = || {
            figure(tokio_nsq_drain(
                trivial.broker.tcp,
                args.backlog,
                workload.size,
                2500,
            ))
        };
        return if baseline_first {
            let theirs = theirs().await?;
            Ok((ours().await?, theirs))
        } else {
            let ours = ours().await?;
            Ok((ours, theirs().await?))
        };
    }
    let setup = match id {
        "spill_mpub" | "spill_sub" => Setup::Spilling,
        _ => Setup::Memory,
    };
    let mut figures = [NO_FIGURE; 2];
    let order = if baseline_first { [1, 0] } else { [0, 1] };
    for side in order {
        figures[side] = if side == 0 {
            if id == "plugin_drain" {
                let trivial = start_trivial()?;
                figure(trivial.drain(args.backlog, workload.size)).await?
            } else {
                let wasqd = spawn_wasqd(match setup {
                    Setup::Memory => IN_MEMORY,
                    Setup::Spilling => &[],
                })?;
                let broker = Broker {
                    tcp: wasqd.tcp,
                    http: wasqd.http,
                    pid: wasqd.pid(),
                };
                figure(broker_row(id, args, workload, &broker)).await?
            }
        } else {
            let nsqd = Nsqd::start(
                &args.nsqd,
                match setup {
                    Setup::Memory => &["--mem-queue-size=100000000"],
                    Setup::Spilling => &[],
                },
            )?;
            let broker = Broker {
                tcp: nsqd.tcp,
                http: nsqd.http,
                pid: nsqd.pid(),
            };
            let id = if id == "plugin_drain" {
                "backlog_sub"
            } else {
                id
            };
            figure(broker_row(id, args, workload, &broker)).await?
        };
    }
    Ok((figures[0], figures[1]))
}

/// The round-trip rows and the rows of outside clients measured against an
/// [`OkServer`] (one that only answers OK, or streams one message) with the
/// same client, right after the brokers; `None` for the other rows.
pub(super) async fn measure_ok_server(
    id: &str,
    args: &VersusArgs,
    workload: &Workload,
) -> anyhow::Result<Option<f64>> {
    let protocol = match id {
        "tcp_pub"
        | "tcp_pub_sleeping"
        | "tcp_pub_pipelined"
        | "tcp_pub_pipelined_write_each"
        | "bench_writer" => Protocol::NsqPub,
        "bench_reader" => Protocol::NsqSub {
            body_size: workload.size,
        },
        "http_pub" | "http_pub_sleeping" | "ab_pub_c1" | "ab_pub_c4" | "ab_mpub_c4" => {
            Protocol::Http
        }
        _ => return Ok(None),
    };
    let server = OkServer::start(protocol)?;
    let at = server.address;
    let broker = Broker {
        tcp: at,
        http: at,
        pid: std::process::id(),
    };
    Ok(Some(if is_tool_row(id) {
        tool_row(id, args, workload, &broker, "ok_server", Target::OkServer).await?
    } else {
        broker_row(id, args, workload, &broker).await?
    }))
}
