//! E_PUB_FAILED, E_MPUB_FAILED and E_DPUB_FAILED: a publish that reaches a
//! topic while it is being deleted. The window is a race in real life, so
//! this test runs the server in-process and holds a topic in that state.

use std::sync::Arc;

use clap::Parser;
use wasq_host::config::Options;
use wasq_host::http::LogControl;
use wasq_host::server;
use wasq_testkit::{FrameType, RawClient};
use wasq_wire::command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_to_an_exiting_topic_fails_like_nsqd() {
    let scratch = tempfile::tempdir().unwrap();
    let plugins_dir = scratch.path().join("plugins");
    let options = Options::parse_from([
        "wasqd",
        "--tcp-address",
        "127.0.0.1:0",
        "--http-address",
        "127.0.0.1:0",
        "--data-path",
        scratch.path().to_str().unwrap(),
        "--plugins-dir",
        plugins_dir.to_str().unwrap(),
        "--no-embedded-lookupd",
    ]);
    let log_control: LogControl = Arc::new(|_| Ok(()));
    let running = server::start(options, log_control).await.unwrap();
    let tcp = running.addresses.tcp;
    // The topic stays registered but is closing, as during a delete.
    running.broker.topic("closing").close().wait().await;

    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            command::encode(|out| command::publish(out, "closing", b"x")),
            "E_PUB_FAILED PUB failed exiting",
        ),
        (
            command::encode(|out| command::mpub(out, "closing", &["x"])),
            "E_MPUB_FAILED MPUB failed exiting",
        ),
        (
            command::encode(|out| command::dpub(out, "closing", 10, b"x")),
            "E_DPUB_FAILED DPUB failed exiting",
        ),
    ];
    let results = tokio::task::spawn_blocking(move || {
        cases
            .into_iter()
            .map(|(command, expected)| {
                let mut client = RawClient::connect_v2(tcp);
                client.send(&command);
                (client.read_frame(), expected)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for ((frame_type, data), expected) in results {
        assert_eq!(
            (frame_type, String::from_utf8_lossy(&data).as_ref()),
            (FrameType::Error, expected)
        );
    }
    running.stop().await;
}
