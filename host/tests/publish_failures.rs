//! E_PUB_FAILED, E_MPUB_FAILED and E_DPUB_FAILED: a publish that reaches a
//! topic while it is being deleted. The window is a race in real life, so
//! this test runs the server in-process and holds a topic in that state.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use wasq_host::config::Options;
use wasq_host::http::LogControl;
use wasq_host::server;

fn read_frame(stream: &mut TcpStream) -> (u32, String) {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).unwrap();
    let mut data = vec![0u8; u32::from_be_bytes(size) as usize];
    stream.read_exact(&mut data).unwrap();
    (
        u32::from_be_bytes(data[..4].try_into().unwrap()),
        String::from_utf8_lossy(&data[4..]).into_owned(),
    )
}

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
    running.broker.topic("closing").close();

    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            [
                b"PUB closing\n".to_vec(),
                1u32.to_be_bytes().to_vec(),
                b"x".to_vec(),
            ]
            .concat(),
            "E_PUB_FAILED PUB failed exiting",
        ),
        (
            [
                b"MPUB closing\n".to_vec(),
                9u32.to_be_bytes().to_vec(),
                1u32.to_be_bytes().to_vec(),
                1u32.to_be_bytes().to_vec(),
                b"x".to_vec(),
            ]
            .concat(),
            "E_MPUB_FAILED MPUB failed exiting",
        ),
        (
            [
                b"DPUB closing 10\n".to_vec(),
                1u32.to_be_bytes().to_vec(),
                b"x".to_vec(),
            ]
            .concat(),
            "E_DPUB_FAILED DPUB failed exiting",
        ),
    ];
    let results = tokio::task::spawn_blocking(move || {
        cases
            .into_iter()
            .map(|(frame, expected)| {
                let mut stream = TcpStream::connect(tcp).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                stream.write_all(b"  V2").unwrap();
                stream.write_all(&frame).unwrap();
                (read_frame(&mut stream), expected)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for ((frame_type, text), expected) in results {
        assert_eq!((frame_type, text.as_str()), (1, expected));
    }
    running.stop().await;
}
