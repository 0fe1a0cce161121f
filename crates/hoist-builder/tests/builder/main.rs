//! hoist-builder integration tests: the store on a real directory, concurrent writers,
//! refused requests, drivers against real sockets.

mod create;
mod drivers;
mod store;
