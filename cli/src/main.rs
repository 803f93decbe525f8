//! `wasq`: the command line for plugin authors and operators.
//!
//! - `wasq plugin new NAME --lang LANG`: a plugin scaffold that builds as is
//! - `wasq plugin test MODULE`: a plugin run on messages without a broker
//! - `wasq pub TOPIC`: stdin lines to a topic (as `to_nsq`)
//! - `wasq tail TOPIC`: a topic's messages to stdout (as `nsq_tail`)
//!
//! Bad input is one line on stderr and exit status 2; a plugin test whose
//! outcome is not what was expected exits 1.

mod log_capture;
mod nsq_tcp;
mod plugin_test;
mod scaffold;
mod topics;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tracing_subscriber::prelude::*;

#[derive(Parser)]
#[command(
    name = "wasq",
    version,
    about = "Wasq: write and test plugins, publish and tail topics"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write and test plugins
    #[command(subcommand)]
    Plugin(PluginCommand),

    /// Publish each line of stdin to a topic (as to_nsq)
    #[command(after_help = "Examples:\n  \
        echo hello | wasq pub words --nsqd-tcp-address 127.0.0.1:4150\n  \
        wasq pub words --lookupd-http-address 127.0.0.1:4161 < lines.txt")]
    Pub {
        /// Topic to publish to
        topic: String,
        #[command(flatten)]
        nodes: NodeFlags,
        /// Byte that ends a message in stdin
        #[arg(long, default_value = "\n", value_parser = single_byte)]
        delimiter: u8,
    },

    /// Print a topic's messages as they arrive, one per line (as nsq_tail)
    #[command(after_help = "Examples:\n  \
        wasq tail words.upper --nsqd-tcp-address 127.0.0.1:4150\n  \
        wasq tail words.upper --lookupd-http-address 127.0.0.1:4161 -n 10")]
    Tail {
        /// Topic to read
        topic: String,
        #[command(flatten)]
        nodes: NodeFlags,
        /// Channel to read from (default: a new ephemeral one, so nothing is taken from other consumers)
        #[arg(long)]
        channel: Option<String>,
        /// Most messages in flight at once
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=2500))]
        max_in_flight: u64,
        /// Stop after this many messages (0: run until interrupted)
        #[arg(short = 'n', long = "total", default_value_t = 0)]
        total: u64,
        /// Print the topic before each message
        #[arg(long)]
        print_topic: bool,
    },
}

#[derive(clap::Args)]
struct NodeFlags {
    /// nsqd/wasqd TCP address (repeatable)
    #[arg(long = "nsqd-tcp-address")]
    nsqd_tcp_addresses: Vec<String>,
    /// lookupd HTTP address to find nodes with (repeatable)
    #[arg(long = "lookupd-http-address")]
    lookupd_http_addresses: Vec<String>,
}

impl NodeFlags {
    fn nodes(self) -> topics::Nodes {
        topics::Nodes {
            nsqd_tcp_addresses: self.nsqd_tcp_addresses,
            lookupd_http_addresses: self.lookupd_http_addresses,
        }
    }
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Write a new plugin's directory: source, SDK, manifest, build.sh, README
    #[command(after_help = "Examples:\n  \
        wasq plugin new shout --lang rust && cd shout && ./build.sh\n  \
        wasq plugin new shout --lang python --dir plugins-src/shout\n  \
        wasq plugin new notify --lang go --template webhook\n\n\
        The plugin consumes topic NAME and publishes each body uppercased to NAME.upper\n\
        (template webhook: POSTs each body to the URL in its manifest's [config]).")]
    New {
        /// The plugin's name (lowercase letters, digits, '-' and '_')
        name: String,
        /// Language to write it in
        #[arg(long, value_enum)]
        lang: scaffold::Language,
        /// What the handler does: uppercase (publish NAME.upper) or webhook
        /// (POST each body to a URL, as nsq_to_http)
        #[arg(long, value_enum, default_value = "uppercase")]
        template: scaffold::Template,
        /// Directory to create (default: ./NAME)
        #[arg(long)]
        dir: Option<PathBuf>,
    },

    /// Run a plugin on messages without a broker, with wasqd's runtime and limits
    #[command(after_help = "Examples:\n  \
        wasq plugin test shout.wasm --message hello --message world\n  \
        wasq plugin test shout.wasm --manifest shout.toml --messages bodies.txt --json\n  \
        wasq plugin test shout.wasm --message hi --expect success   # in a plugin's CI\n\n\
        Prints, per message, the outcome, what the plugin published, its outbound HTTP\n\
        requests (really sent, under the manifest's allowlist and --allow-host) with\n\
        their answers, its log lines and its handler time. Exits 1 on a trap, a timeout,\n\
        an ABI error or an outcome other than --expect; 2 on bad input.")]
    Test {
        /// The plugin: NAME.wasm (core module or component) or NAME.wat
        module: PathBuf,
        /// Its manifest (default: NAME.toml beside the module)
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// A message body (repeatable)
        #[arg(long = "message")]
        messages: Vec<String>,
        /// A file of message bodies, one per line
        #[arg(long = "messages")]
        messages_file: Option<PathBuf>,
        /// One JSON object per message instead of text
        #[arg(long)]
        json: bool,
        /// Fail unless every message ends this way
        #[arg(long, value_enum)]
        expect: Option<plugin_test::Expected>,
        /// The delivery attempt each message is on (1: first)
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
        attempt: u16,
        /// Also allow outbound HTTP to this host for the run, in the
        /// manifest's form (`https://api.example.com`; repeatable). Requests
        /// are really sent, and shown with their answers.
        #[arg(long = "allow-host")]
        allow_hosts: Vec<String>,
        /// Start the plugin's state (`state = true`) from the keys in this
        /// JSON object of strings (`{"count/a": "41"}`); by default it
        /// starts empty. Each message's committed writes are printed.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
    },
}

fn single_byte(text: &str) -> Result<u8, String> {
    match text.as_bytes() {
        [byte] => Ok(*byte),
        _ => Err("must be a single byte".into()),
    }
}

/// Bad input: one line, exit status 2.
fn refuse(message: &str) -> ExitCode {
    eprintln!("wasq: {}", one_line(message));
    ExitCode::from(2)
}

/// A compiler's or parser's multi-line report as one line: its first line
/// and, when it ends with a sentence rather than a source excerpt, that.
fn one_line(message: &str) -> String {
    let mut lines = message.lines();
    let first = lines.next().unwrap_or_default().to_string();
    match lines.last() {
        Some(last) if !last.is_empty() && !last.starts_with([' ', '|', '^', '-']) => {
            format!("{first}: {last}")
        }
        _ => first,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Plugin(PluginCommand::New {
            name,
            lang,
            template,
            dir,
        }) => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            match scaffold::scaffold(&name, lang, template, &dir) {
                Ok(files) => {
                    println!(
                        "wrote {} files into {}; build with: {}/build.sh",
                        files.len(),
                        dir.display(),
                        dir.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => refuse(&e),
            }
        }
        Command::Plugin(PluginCommand::Test {
            module,
            manifest,
            messages,
            messages_file,
            json,
            expect,
            attempt,
            allow_hosts,
            state,
        }) => {
            let mut bodies: Vec<Vec<u8>> = messages.into_iter().map(String::into_bytes).collect();
            if let Some(file) = messages_file {
                match std::fs::read(&file) {
                    Ok(text) => bodies.extend(
                        text.split(|b| *b == b'\n')
                            .filter(|line| !line.is_empty())
                            .map(<[u8]>::to_vec),
                    ),
                    Err(e) => return refuse(&format!("{}: {e}", file.display())),
                }
            }
            if bodies.is_empty() {
                return refuse("no messages: give --message TEXT or --messages FILE");
            }
            // The plugin's log lines are shown under each message.
            let logs = Arc::new(log_capture::LogBuffer::default());
            tracing_subscriber::registry()
                .with(
                    log_capture::CaptureLayer {
                        buffer: logs.clone(),
                    }
                    .with_filter(tracing_subscriber::EnvFilter::new("wasq_host=debug")),
                )
                .init();
            let test = plugin_test::TestRun {
                module,
                manifest,
                messages: bodies,
                json,
                expect,
                attempt,
                allow_hosts,
                state,
            };
            match plugin_test::run(test, logs) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => refuse(&e),
            }
        }
        Command::Pub {
            topic,
            nodes,
            delimiter,
        } => match topics::publish_stdin(&topic, &nodes.nodes(), delimiter) {
            Ok(count) => {
                eprintln!("wasq: published {count} message(s) to {topic}");
                ExitCode::SUCCESS
            }
            Err(e) => refuse(&e),
        },
        Command::Tail {
            topic,
            nodes,
            channel,
            max_in_flight,
            total,
            print_topic,
        } => {
            let tail = topics::Tail {
                topic,
                channel,
                max_in_flight,
                total,
                print_topic,
            };
            match topics::tail(tail, &nodes.nodes()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => refuse(&e),
            }
        }
    }
}
