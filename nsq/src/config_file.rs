//! `--config FILE`: a TOML file of settings by their nsqd config names, as
//! nsqd and nsqlookupd read one.
//!
//! A key is the flag's name with `_` for `-` (`mem_queue_size`), except where
//! nsqd renamed it (`nsqlookupd_tcp_addresses` for `--lookupd-tcp-address`).
//! Flags given on the command line win over the file. Values follow nsqd's
//! coercions: durations as Go strings (`"60s"`) or integers of milliseconds,
//! lists as TOML arrays or comma-separated strings, and an empty string
//! leaves an option unset (nsqd's example file says `tls_cert = ""`).
//!
//! Unlike nsqd, which ignores a key it does not know, an unknown key or a bad
//! value stops start-up with the file and key named: a typo in a config file
//! should not silently run the broker with a default.
//!
//! The file is turned into `--flag=value` arguments placed before the
//! command line's, so every value goes through the same parser as a flag and
//! later (command-line) values override it.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, Command};

/// How a daemon's flags are named in its config file.
pub struct ConfigNames {
    /// `(flag, key)` pairs where the key is not the flag with `_` for `-`.
    pub renamed: &'static [(&'static str, &'static str)],
    /// Flags a file may not set (`config` itself, harness-only switches).
    pub not_in_file: &'static [&'static str],
}

impl ConfigNames {
    /// The file key of a flag spelled `long` (without dashes).
    fn key_of(&self, long: &str) -> String {
        self.renamed
            .iter()
            .find(|(flag, _)| *flag == long)
            .map(|(_, key)| key.to_string())
            .unwrap_or_else(|| long.replace('-', "_"))
    }
}

/// Returns `args` with the settings of the `--config` file they name (if any)
/// inserted before the command line's own flags.
///
/// Arguments clap cannot parse are returned unchanged, so the caller's parse
/// reports them (and `--help` and `--version` still work).
pub fn merge_config_file(
    command: Command,
    args: Vec<String>,
    names: &ConfigNames,
) -> Result<Vec<String>, String> {
    let Ok(matches) = command.clone().try_get_matches_from(&args) else {
        return Ok(args);
    };
    let Some(path) = matches.get_one::<PathBuf>("config") else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("failed to load config file {}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("failed to load config file {}: {e}", path.display()))?;

    let mut from_file = Vec::new();
    for (key, value) in &table {
        let at = |message: String| format!("config file {}: {key}: {message}", path.display());
        let arg =
            find_arg(&command, names, key).ok_or_else(|| at(unknown_key(&command, names, key)))?;
        let given_on_command_line =
            matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine);
        if given_on_command_line {
            continue;
        }
        from_file.extend(flags_for(&command, arg, value).map_err(at)?);
    }

    let mut merged = Vec::with_capacity(args.len() + from_file.len());
    let mut args = args.into_iter();
    merged.extend(args.next());
    merged.extend(from_file);
    merged.extend(args);
    Ok(merged)
}

/// The argument a config key sets, if the file may set it.
fn find_arg<'c>(command: &'c Command, names: &ConfigNames, key: &str) -> Option<&'c Arg> {
    command.get_arguments().find(|arg| {
        let settable = !matches!(
            arg.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        );
        settable
            && arg
                .get_long()
                .is_some_and(|long| !names.not_in_file.contains(&long) && names.key_of(long) == key)
    })
}

/// The message for a key no flag has, with a hint when it is a flag's name
/// that nsqd spells differently in its files.
fn unknown_key(command: &Command, names: &ConfigNames, key: &str) -> String {
    let renamed_to = names
        .renamed
        .iter()
        .find(|(flag, _)| flag.replace('-', "_") == key)
        .map(|(_, renamed)| *renamed);
    match renamed_to {
        Some(renamed) => format!("unknown key (config files call it {renamed})"),
        None if command
            .get_arguments()
            .any(|a| a.get_long() == Some(&key.replace('_', "-"))) =>
        {
            "cannot be set in a config file".to_string()
        }
        None => "unknown key".to_string(),
    }
}

/// The `--flag=value` arguments that give `arg` the file's `value`.
fn flags_for(command: &Command, arg: &Arg, value: &toml::Value) -> Result<Vec<String>, String> {
    let long = arg.get_long().expect("config keys are long flags");
    match arg.get_action() {
        ArgAction::SetTrue => match value {
            toml::Value::Boolean(true) => Ok(vec![format!("--{long}")]),
            toml::Value::Boolean(false) => Ok(Vec::new()),
            other => Err(format!("expected true or false, found {other}")),
        },
        ArgAction::Append => {
            let items: Vec<&toml::Value> = match value {
                toml::Value::Array(items) => items.iter().collect(),
                single => vec![single],
            };
            let mut flags = Vec::new();
            for item in items {
                let text = scalar_text(command, arg, item)?;
                // nsqd splits a string given for a list on commas.
                for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    parse(command, arg, part)?;
                    flags.push(format!("--{long}={part}"));
                }
            }
            Ok(flags)
        }
        _ => {
            if value.is_array() {
                return Err(format!("expected one value, found a list {value}"));
            }
            let text = scalar_text(command, arg, value)?;
            if text.is_empty()
                && (arg.get_default_values().is_empty() || parse(command, arg, "").is_err())
            {
                return Ok(Vec::new());
            }
            parse(command, arg, &text)?;
            Ok(vec![format!("--{long}={text}")])
        }
    }
}

/// A TOML scalar as the flag's text (checked by the caller). An integer
/// the flag refuses but takes with `ms` appended is a duration in
/// milliseconds, as nsqd reads it.
fn scalar_text(command: &Command, arg: &Arg, value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => {
            let millis = format!("{i}ms");
            let duration = parse(command, arg, &i.to_string()).is_err()
                && parse(command, arg, &millis).is_ok();
            Ok(if duration { millis } else { i.to_string() })
        }
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!(
            "expected a string, number or boolean, found {other}"
        )),
    }
}

/// Runs the flag's own value parser on `text` (by parsing a command line of
/// just that flag), returning its complaint as one line.
fn parse(command: &Command, arg: &Arg, text: &str) -> Result<(), String> {
    let long = arg.get_long().expect("config keys are long flags");
    let line = [command.get_name().to_string(), format!("--{long}={text}")];
    command
        .clone()
        .try_get_matches_from(line)
        .map(drop)
        .map_err(|e| {
            // clap's message up to its blank line: the complaint and, for a
            // choice, its possible values; not the usage hint after it.
            let rendered = e.to_string();
            let complaint: Vec<&str> = rendered
                .lines()
                .take_while(|line| !line.trim().is_empty())
                .map(str::trim)
                .collect();
            let complaint = complaint.join(" ");
            complaint
                .strip_prefix("error: ")
                .unwrap_or(&complaint)
                .to_string()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::Duration;

    #[derive(Parser, Debug)]
    #[command(args_override_self = true)]
    struct Flags {
        #[arg(long, default_value = "127.0.0.1:4150")]
        tcp_address: String,
        #[arg(long, default_value_t = 10000)]
        mem_queue_size: i64,
        #[arg(long, default_value = "1m0s", value_parser = crate::duration::parse_go_duration)]
        msg_timeout: Duration,
        #[arg(long = "lookupd-tcp-address")]
        lookupd_tcp_addresses: Vec<String>,
        #[arg(long = "e2e-processing-latency-percentile", value_delimiter = ',')]
        percentiles: Vec<f64>,
        #[arg(long, default_value_t = true, action = ArgAction::Set)]
        snappy: bool,
        #[arg(long)]
        no_embedded_lookupd: bool,
        #[arg(long)]
        tls_cert: Option<String>,
        #[arg(long, default_value = "[nsqd] ")]
        log_prefix: String,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, hide = true)]
        exit_on_stdin_eof: bool,
    }

    const NAMES: ConfigNames = ConfigNames {
        renamed: &[
            ("lookupd-tcp-address", "nsqlookupd_tcp_addresses"),
            (
                "e2e-processing-latency-percentile",
                "e2e_processing_latency_percentiles",
            ),
        ],
        not_in_file: &["config", "exit-on-stdin-eof"],
    };

    fn load(toml: &str, flags: &[&str]) -> Result<Flags, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.cfg");
        std::fs::write(&path, toml).unwrap();
        let mut args = vec!["test".to_string(), format!("--config={}", path.display())];
        args.extend(flags.iter().map(|f| f.to_string()));
        use clap::CommandFactory;
        let merged = merge_config_file(Flags::command(), args, &NAMES)?;
        Flags::try_parse_from(merged).map_err(|e| e.to_string())
    }

    #[test]
    fn file_sets_what_flags_do_not() {
        let flags = load(
            r#"
            tcp_address = "0.0.0.0:5150"
            mem_queue_size = 7
            msg_timeout = "90s"
            nsqlookupd_tcp_addresses = ["a:4160", "b:4160"]
            e2e_processing_latency_percentiles = [1.0, 0.99]
            snappy = false
            no_embedded_lookupd = true
            tls_cert = ""
            log_prefix = ""
            "#,
            &["--mem-queue-size", "9"],
        )
        .unwrap();
        assert_eq!(flags.tcp_address, "0.0.0.0:5150");
        assert_eq!(flags.mem_queue_size, 9, "the command line wins");
        assert_eq!(flags.msg_timeout, Duration::from_secs(90));
        assert_eq!(flags.lookupd_tcp_addresses, ["a:4160", "b:4160"]);
        assert_eq!(flags.percentiles, [1.0, 0.99]);
        assert!(!flags.snappy);
        assert!(flags.no_embedded_lookupd);
        assert_eq!(flags.tls_cert, None, "an empty string leaves it unset");
        assert_eq!(flags.log_prefix, "", "unless empty is a value");
    }

    #[test]
    fn lists_from_the_command_line_replace_the_file_s() {
        let flags = load(
            r#"nsqlookupd_tcp_addresses = "a:4160,b:4160""#,
            &["--lookupd-tcp-address=c:4160"],
        )
        .unwrap();
        assert_eq!(flags.lookupd_tcp_addresses, ["c:4160"]);
        let flags = load(r#"nsqlookupd_tcp_addresses = "a:4160,b:4160""#, &[]).unwrap();
        assert_eq!(flags.lookupd_tcp_addresses, ["a:4160", "b:4160"]);
    }

    #[test]
    fn integer_durations_are_milliseconds() {
        let flags = load("msg_timeout = 1500", &[]).unwrap();
        assert_eq!(flags.msg_timeout, Duration::from_millis(1500));
    }

    #[test]
    fn mistakes_name_the_file_and_key() {
        let error = load("mem_queue_sise = 5", &[]).unwrap_err();
        assert!(
            error.contains("test.cfg: mem_queue_sise: unknown key"),
            "{error}"
        );
        let error = load("lookupd_tcp_address = [\"a:1\"]", &[]).unwrap_err();
        assert!(
            error.contains("config files call it nsqlookupd_tcp_addresses"),
            "{error}"
        );
        let error = load("exit_on_stdin_eof = true", &[]).unwrap_err();
        assert!(error.contains("cannot be set in a config file"), "{error}");
        let error = load("mem_queue_size = \"many\"", &[]).unwrap_err();
        assert!(
            error.contains("mem_queue_size: invalid value 'many'"),
            "{error}"
        );
        let error = load("msg_timeout = \"soon\"", &[]).unwrap_err();
        assert!(
            error.contains("msg_timeout: invalid value 'soon'"),
            "{error}"
        );
        let error = load("tcp_address = [\"a\", \"b\"]", &[]).unwrap_err();
        assert!(error.contains("tcp_address: expected one value"), "{error}");
        let error = load("snappy = 1.5", &[]).unwrap_err();
        assert!(error.contains("snappy: invalid value '1.5'"), "{error}");
        let error = load("tcp_address = ", &[]).unwrap_err();
        assert!(error.contains("failed to load config file"), "{error}");
    }

    #[test]
    fn a_missing_file_is_named() {
        use clap::CommandFactory;
        let args = vec!["test".into(), "--config=/no/such/file.cfg".into()];
        let error = merge_config_file(Flags::command(), args, &NAMES).unwrap_err();
        assert!(error.contains("/no/such/file.cfg"), "{error}");
    }
}
