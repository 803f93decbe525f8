//! The process's limit on open files, raised at start-up.
//!
//! Every TCP connection is a file, and so is each disk queue's segment
//! while it is written or read: a broker with tens of thousands of queues
//! or connections passes the usual soft limit of 1024 long before any real
//! limit. Go raises the soft limit to the hard one for every program since
//! Go 1.19, so nsqd and nsqlookupd run with the hard limit; wasqd and
//! wasq-lookupd do the same, and so does the load tool.

/// Raises the soft limit on open files to the hard limit (a failure
/// leaves the limit as it was).
pub fn raise_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        let _ = setrlimit(Resource::Nofile, raised);
    }
}
