//! hoist-git against real git servers on loopback (hoist-testkit's `git http-backend` and
//! `git daemon`).

mod checkout;
