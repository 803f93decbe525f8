//! Helpers shared by the TLS, compression and auth tests (each test file
//! uses a part of them).
#![allow(dead_code)]

pub mod nsq;
pub mod tls;
