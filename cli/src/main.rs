//! `wasq`: the command line for plugin authors and operators.
//!
//! - `wasq plugin new NAME --lang LANG`: a plugin scaffold that builds as is
//! - `wasq plugin test MODULE`: a plugin run on messages without a broker
//! - `wasq plugin deploy MODULE`, `ls`, `rm NAME`: plugins on every node of
//!   a cluster, through each node's plugin API
//! - `wasq pub TOPIC`: stdin lines to a topic (as `to_nsq`)
//! - `wasq tail TOPIC`: a topic's messages to stdout (as `nsq_tail`)
//!
//! Bad input is one line on stderr and exit status 2; a plugin test whose
//! outcome is not what was expected exits 1, and so does a deploy that was
//! rolled back.

mod cluster;
mod cluster_ls;
mod deploy;
mod log_capture;
mod nsq_tcp;
mod plugin_test;
mod scaffold;
mod topics;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing_subscriber::prelude::*;
use wasq_host::allocator::compiling;

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

    /// Deploy a plugin to every node: one node first, then the rest; rolled
    /// back everywhere if a node refuses it or it fails within the settle time
    #[command(after_help = "Examples:\n  \
        wasq plugin deploy shout.wasm --lookupd-http-address 10.0.0.1:4161 --token-file deploy.token\n  \
        wasq plugin deploy shout.wasm --manifest prod/shout.toml --nsqd-http-address 10.0.0.5:4151 --all-at-once\n\n\
        Each node must run wasqd --plugin-admin (see the README, \"Running a cluster\").\n\
        Exits 1 when the deploy was rolled back, 2 on bad input or a node that cannot be asked.")]
    Deploy {
        /// The plugin: NAME.wasm (core module or component) or NAME.wat
        module: PathBuf,
        /// Its manifest (default: NAME.toml beside the module)
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// The plugin's name on the nodes (default: the module's file name without extension)
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        cluster: cluster::ClusterFlags,
        /// Every node at once, not one node first
        #[arg(long)]
        all_at_once: bool,
        /// How long each node's new version must keep running without failing
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        settle: Duration,
        /// Traps and timeouts a node's new version may have within the settle time
        #[arg(long, default_value_t = 0)]
        max_failures: u64,
    },

    /// List plugins across the nodes: versions, states, handled and failed per second
    #[command(after_help = "Examples:\n  \
        wasq plugin ls --lookupd-http-address 10.0.0.1:4161\n  \
        wasq plugin ls --nsqd-http-address 10.0.0.5:4151 --nsqd-http-address 10.0.0.6:4151 --json\n\n\
        FAILED counts traps and timeouts.")]
    Ls {
        #[command(flatten)]
        cluster: cluster::ClusterFlags,
        /// Time between the two looks the rates come from
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// One JSON object instead of a table
        #[arg(long)]
        json: bool,
    },

    /// Remove a plugin from every node (its state and channel stay)
    Rm {
        /// The plugin's name
        name: String,
        #[command(flatten)]
        cluster: cluster::ClusterFlags,
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

/// As wasqd's: glibc's malloc, mimalloc while `wasq plugin test` compiles
/// the plugin (a JavaScript component's test run: 0.86-0.96 s before, 0.72-0.76 s).
#[global_allocator]
static ALLOCATOR: compiling::WasqdAllocator = compiling::WasqdAllocator;

fn main() -> ExitCode {
    wasq_host::allocator::limit_arenas();
    // Without the arena or the pool, compiles allocate from glibc: slower,
    // not wrong, so neither failing stops the command.
    let _ = compiling::reserve_arena();
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
            // wasmtime compiles a module's functions on rayon's pool: its
            // threads, marked, allocate from the compile arena too.
            let _ = compiling::build_compile_pool();
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
        Command::Plugin(PluginCommand::Deploy {
            module,
            manifest,
            name,
            cluster,
            all_at_once,
            settle,
            max_failures,
        }) => {
            let deploy = match read_deploy(module, manifest, name) {
                Ok((name, version)) => deploy::Deploy {
                    name,
                    version,
                    all_at_once,
                    settle,
                    max_failures,
                },
                Err(e) => return refuse(&e),
            };
            let nodes = match cluster.nodes() {
                Ok(nodes) => nodes,
                Err(e) => return refuse(&e),
            };
            match deploy::deploy(&nodes, &deploy) {
                Ok(()) => ExitCode::SUCCESS,
                Err(deploy::NotDeployed::NotStarted(e)) => refuse(&e),
                Err(deploy::NotDeployed::RolledBack(e)) => {
                    eprintln!("wasq: {}", one_line(&e));
                    ExitCode::from(1)
                }
            }
        }
        Command::Plugin(PluginCommand::Ls {
            cluster,
            interval,
            json,
        }) => match cluster
            .nodes()
            .and_then(|nodes| cluster_ls::list(&nodes, interval, json))
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => refuse(&e),
        },
        Command::Plugin(PluginCommand::Rm { name, cluster }) => {
            match cluster
                .nodes()
                .and_then(|nodes| deploy::remove(&nodes, &name))
            {
                Ok(()) => ExitCode::SUCCESS,
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

/// The plugin's name and version from the deploy's files.
fn read_deploy(
    module: PathBuf,
    manifest: Option<PathBuf>,
    name: Option<String>,
) -> Result<(String, cluster::Version), String> {
    let name = match name {
        Some(name) => name,
        None => module
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| {
                format!(
                    "{}: no file name to take the plugin's name from",
                    module.display()
                )
            })?
            .to_string(),
    };
    if !wasq_host::plugins::is_plugin_name(&name) {
        return Err(format!(
            "{name:?} is not a plugin name ([A-Za-z0-9_.-], not starting with '.'); give --name"
        ));
    }
    let manifest = manifest.unwrap_or_else(|| module.with_extension("toml"));
    let version = cluster::Version {
        module: std::fs::read(&module).map_err(|e| format!("{}: {e}", module.display()))?,
        manifest: std::fs::read_to_string(&manifest)
            .map_err(|e| format!("{}: {e}", manifest.display()))?,
    };
    Ok((name, version))
}
