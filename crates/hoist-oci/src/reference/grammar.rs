//! The reference grammar of distribution/reference, as anchored regular expressions.
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [domain '/'] remote-name
//! domain           := host [':' port-number]
//! host             := domain-name | '[' ipv6 ']'
//! domain-name      := domain-component ['.' domain-component]*
//! domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
//! port-number      := /[0-9]+/
//! remote-name      := path-component ['/' path-component]*
//! path-component   := alpha-numeric [separator alpha-numeric]*
//! alpha-numeric    := /[a-z0-9]+/
//! separator        := /[_.]|__|[-]+/
//! tag              := /[\w][\w.-]{0,127}/ (Go's `\w`: ASCII letters, digits, `_`)
//! digest           := algorithm ":" hex, algorithm components /[A-Za-z][A-Za-z0-9]*/ joined
//!                     by /[-_+.]/, hex /[0-9a-fA-F]{32,}/
//! identifier       := /[a-f0-9]{64}/
//! ```
//!
//! Rust's `regex` crate has the same leftmost-first semantics as Go's RE2 package, so the
//! capture groups come out as distribution's do.

use std::sync::LazyLock;

use regex::Regex;

const ALPHA_NUMERIC: &str = "[a-z0-9]+";
const SEPARATOR: &str = "(?:[_.]|__|[-]+)";
const DOMAIN_COMPONENT: &str = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const IPV6: &str = r"\[(?:[a-fA-F0-9:]+)\]";
// Go's `\w` is ASCII; Rust's would take any Unicode letter, and compiling 128 copies of
// that class costs every process parsing a reference about 40 ms.
const TAG: &str = r"[0-9A-Za-z_][0-9A-Za-z_.-]{0,127}";
const DIGEST: &str = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}";
const IDENTIFIER: &str = "[a-f0-9]{64}";

fn path_component() -> String {
    format!("{ALPHA_NUMERIC}(?:{SEPARATOR}{ALPHA_NUMERIC})*")
}

fn remote_name() -> String {
    let component = path_component();
    format!("{component}(?:/{component})*")
}

fn domain_and_port() -> String {
    let domain_name = format!(r"{DOMAIN_COMPONENT}(?:\.{DOMAIN_COMPONENT})*");
    format!("(?:{domain_name}|{IPV6})(?::[0-9]+)?")
}

fn name() -> String {
    format!("(?:{}/)?{}", domain_and_port(), remote_name())
}

fn compile(pattern: &str) -> Regex {
    // The patterns are constants of this module; a failure is a bug caught by every test.
    Regex::new(pattern).expect("reference grammar regexp compiles")
}

/// `^domain[:port]$`.
pub static ANCHORED_DOMAIN: LazyLock<Regex> =
    LazyLock::new(|| compile(&format!("^{}$", domain_and_port())));

/// `^(?:(domain)/)?(remote-name)$`: groups 1 = domain, 2 = remote name.
pub static ANCHORED_NAME: LazyLock<Regex> = LazyLock::new(|| {
    compile(&format!(
        "^(?:({})/)?({})$",
        domain_and_port(),
        remote_name()
    ))
});

/// `^(name)(?::(tag))?(?:@(digest))?$`: groups 1 = name, 2 = tag, 3 = digest.
pub static REFERENCE: LazyLock<Regex> =
    LazyLock::new(|| compile(&format!("^({})(?::({TAG}))?(?:@({DIGEST}))?$", name())));

/// `^tag$`.
pub static ANCHORED_TAG: LazyLock<Regex> = LazyLock::new(|| compile(&format!("^{TAG}$")));

/// `^digest$` (the reference grammar's looser digest: any algorithm, 32+ hex digits).
pub static ANCHORED_DIGEST: LazyLock<Regex> = LazyLock::new(|| compile(&format!("^{DIGEST}$")));

/// `^[a-f0-9]{64}$`: an image ID.
pub static ANCHORED_IDENTIFIER: LazyLock<Regex> =
    LazyLock::new(|| compile(&format!("^{IDENTIFIER}$")));
