//! Integration tests of the `baton` binary: the command-line contract, the bad-input corpus,
//! and crash recovery. One test binary keeps link times down.

mod aws;
mod common;
mod console;
mod contract;
mod corpus;
mod crash;
mod docs;
mod e2e;
mod ecs;
mod faults;
mod hooks;
mod hostile;
mod kinds;
mod live;
mod moto;
mod runner;
mod sck;
mod sck_apps;
mod secrets;
mod stopping;
mod stored_plan;
