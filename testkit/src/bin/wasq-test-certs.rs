//! `wasq-test-certs DIR`: writes fresh test certificates into DIR (for the
//! Python and JavaScript client tests; see `wasq_testkit::certs`).

fn main() -> std::process::ExitCode {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: wasq-test-certs DIR");
        return std::process::ExitCode::from(2);
    };
    match wasq_testkit::certs::write(std::path::Path::new(&dir)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wasq-test-certs: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
