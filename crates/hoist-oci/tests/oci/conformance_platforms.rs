//! containerd/platforms vectors (conformance folder `containerd-platforms`): parse/format,
//! normalisation, matchers and preference order. Host-dependent cases use the linux/amd64
//! values the data provides (`*_on_linux_amd64_host`), with an explicit linux/amd64 host.
#![allow(clippy::print_stdout)] // conformance runners print their counts

use std::path::Path;

use hoist_oci::platform::{cpu_variant_from_arch, normalize_arch, normalize_os};
use hoist_oci::{MatchComparer, Matcher, Platform};
use serde_json::Value;

fn load(dir: &Path, file: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn host() -> Platform {
    Platform::new("linux", "amd64")
}

fn parse(spec: &str) -> Platform {
    Platform::parse_with_host(spec, &host()).unwrap()
}

fn platform_of(v: &Value) -> Platform {
    Platform {
        os: s(&v["os"]).to_owned(),
        architecture: s(&v["architecture"]).to_owned(),
        variant: s(&v["variant"]).to_owned(),
        os_version: s(&v["os_version"]).to_owned(),
        os_features: v["os_features"]
            .as_array()
            .map(|a| a.iter().map(|f| s(f).to_owned()).collect())
            .unwrap_or_default(),
        features: Vec::new(),
    }
}

#[derive(Default)]
struct Tally {
    total: usize,
    failures: Vec<String>,
}

impl Tally {
    fn check(&mut self, table: &str, ok: bool, what: impl FnOnce() -> String) {
        self.total += 1;
        if !ok {
            self.failures.push(format!("{table}: {}", what()));
        }
    }
}

fn parse_format(t: &mut Tally, doc: &Value) {
    for c in doc["parse_selector"]["cases"].as_array().unwrap() {
        let input = s(&c["input"]);
        let got = Platform::parse_with_host(input, &host());
        if c.get("skipped_upstream").is_some() {
            // Upstream skips these because Parse rejects wildcards; so do we.
            t.check("parse_selector", got.is_err(), || {
                format!("{input:?} -> {got:?}")
            });
            continue;
        }
        let expected = platform_of(
            c.get("expected_on_linux_amd64_host")
                .unwrap_or(&c["expected"]),
        );
        let formatted = c
            .get("formatted_on_linux_amd64_host")
            .map_or_else(|| s(&c["formatted"]), s);
        let ok = got.as_ref().is_ok_and(|p| {
            let matcher = Matcher::new(p);
            let format = |p: &Platform| match s(&c["format_function"]) {
                "FormatAll" => p.format_all(),
                _ => p.format(),
            };
            *p == expected
                && matcher.matches(&expected)
                && c["matches"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|m| matcher.matches(&platform_of(m)))
                && format(p) == formatted
                && format(&parse(formatted)) == formatted
        });
        t.check("parse_selector", ok, || format!("{input:?} -> {got:?}"));
    }
    for table in ["format_all_encoding", "format_all_skips_empty_features"] {
        for c in doc[table]["cases"].as_array().unwrap() {
            let p = platform_of(&c["platform"]);
            let got = p.format_all();
            let back = Platform::parse_with_host(&got, &host());
            let want_features: Vec<String> = {
                let mut f: Vec<String> = p
                    .os_features
                    .iter()
                    .filter(|f| !f.is_empty())
                    .cloned()
                    .collect();
                f.sort();
                f.dedup();
                f
            };
            let ok = got == s(&c["expected"])
                && back
                    .as_ref()
                    .is_ok_and(|b| b.os_version == p.os_version && b.os_features == want_features);
            t.check(table, ok, || format!("{p:?} -> {got:?} / {back:?}"));
        }
    }
    for input in doc["parse_invalid"]["cases"].as_array().unwrap() {
        let got = Platform::parse_with_host(s(input), &host());
        t.check("parse_invalid", got.is_err(), || {
            format!("{input} -> {got:?}")
        });
    }
}

/// Pairs of (from, to) variants written in a rule text such as
/// `"8", "v8", "v8.0" -> ""; "9", "9.0", "v9.0" -> "v9"; others kept`.
fn quoted(text: &str) -> Vec<String> {
    text.split('"')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, q)| q.to_owned())
        .collect()
}

fn normalization(t: &mut Tally, doc: &Value) {
    let os = &doc["normalize_os"];
    for (input, want) in [
        ("", "linux"),
        ("macOS", "darwin"),
        ("MACOS", "darwin"),
        ("macos", "darwin"),
        ("LiNuX", "linux"),
        ("Windows", "windows"),
    ] {
        let got = normalize_os(input);
        t.check("normalize_os", got == want, || {
            format!("{input:?} -> {got:?} ({os})")
        });
    }
    for rule in doc["normalize_arch"]["rules"].as_array().unwrap() {
        let arch_out = s(&rule["arch_out"]);
        let variant_rule = s(&rule["variant"]);
        for arch_in in rule["arch_in"].as_array().unwrap() {
            let arch_in = s(arch_in);
            if arch_in == "anything else" {
                for (a, v) in [("PPC64LE", "V9"), ("riscv64", ""), ("s390x", "x")] {
                    let got = normalize_arch(a, v);
                    let ok = got == (a.to_lowercase(), v.to_lowercase());
                    t.check("normalize_arch", ok, || format!("{a}/{v} -> {got:?}"));
                }
                continue;
            }
            for arch in [arch_in.to_owned(), arch_in.to_uppercase()] {
                let mut pairs: Vec<(String, String)> = Vec::new();
                if let Some(always) = variant_rule.strip_prefix("always ") {
                    let want = quoted(always).pop().unwrap_or_default();
                    pairs.extend(["", "v1", "v9"].map(|v| (v.to_owned(), want.clone())));
                } else {
                    for clause in variant_rule.split(';') {
                        if let Some((from, to)) = clause.split_once("->") {
                            let (from, to) = (quoted(from), quoted(to));
                            for (i, f) in from.iter().enumerate() {
                                let want = if to.len() == from.len() {
                                    &to[i]
                                } else {
                                    &to[0]
                                };
                                pairs.push((f.clone(), want.clone()));
                            }
                        } else if clause.contains("kept") {
                            pairs.push(("vx".into(), "vx".into()));
                        }
                    }
                }
                for (variant, want_variant) in pairs {
                    let got = normalize_arch(&arch, &variant);
                    let ok = got == (arch_out.to_owned(), want_variant.clone());
                    t.check("normalize_arch", ok, || {
                        format!("{arch}/{variant:?} -> {got:?}, want {arch_out}/{want_variant:?}")
                    });
                }
            }
        }
    }
    // parse_extra_rules is prose; these are the examples it names.
    let _rules = &doc["parse_extra_rules"];
    for (input, want) in [
        ("linux/arm/v7", Some("linux/arm/v7")),
        ("linux/armhf", Some("linux/arm")),
        ("linux/arm", Some("linux/arm")),
        ("linux/arm64/v8", Some("linux/arm64/v8")),
        ("linux/arm64", Some("linux/arm64")),
        ("armhf", Some("linux/arm")),
        ("linux", Some("linux/amd64")),
        ("linux/amd64/v2/x", None),
        ("linux/*", None),
        ("nosuchthing", None),
    ] {
        let got = Platform::parse_with_host(input, &host()).map(|p| p.format());
        let ok = got.as_deref().ok() == want;
        t.check("parse_extra_rules", ok, || format!("{input:?} -> {got:?}"));
    }
    for c in doc["cpu_variant_from_arch"]["cases"].as_array().unwrap() {
        let got = cpu_variant_from_arch(s(&c["input"]));
        let ok = match c.get("error") {
            Some(_) => got.is_err(),
            None => got.as_deref().ok() == Some(s(&c["variant"])),
        };
        t.check("cpu_variant_from_arch", ok, || format!("{c} -> {got:?}"));
    }
}

fn matchers(t: &mut Tally, doc: &Value) {
    type Make = fn(&Platform) -> MatchComparer;
    let tables: [(&str, Make); 3] = [
        ("only", MatchComparer::only),
        ("only_strict", MatchComparer::only_strict),
        ("only_os", MatchComparer::only_os),
    ];
    for (table, make) in tables {
        for c in doc[table]["cases"].as_array().unwrap() {
            let m = make(&parse(s(&c["platform"])));
            for (key, want) in [("match", true), ("no_match", false)] {
                for cand in c[key].as_array().unwrap() {
                    let got = m.matches(&parse(s(cand)));
                    t.check(table, got == want, || {
                        format!("{} vs {cand}: want {want}", c["platform"])
                    });
                }
            }
        }
    }
    let order = |t: &mut Tally, table: &str, c: &Value, m: MatchComparer| {
        let mut items: Vec<Platform> = c["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| parse(s(p)))
            .collect();
        m.sort_by(&mut items, |p| p);
        let got: Vec<String> = items.iter().map(Platform::format_all).collect();
        let want: Vec<&str> = c["expected_order"]
            .as_array()
            .unwrap()
            .iter()
            .map(s)
            .collect();
        t.check(table, got == want, || {
            format!("{} -> {got:?}, want {want:?}", c["platform"])
        });
    };
    for c in doc["only_os_less"]["cases"].as_array().unwrap() {
        order(
            t,
            "only_os_less",
            c,
            MatchComparer::only_os(&parse(s(&c["platform"]))),
        );
    }
    for c in doc["compare_os_features"]["cases"].as_array().unwrap() {
        let p = parse(s(&c["platform"]));
        for m in [
            MatchComparer::only(&p),
            MatchComparer::only_strict(&p),
            MatchComparer::ordered(std::slice::from_ref(&p)),
            MatchComparer::any(std::slice::from_ref(&p)),
        ] {
            order(t, "compare_os_features", c, m);
        }
    }
}

#[test]
fn containerd_platforms_conformance() {
    let Some(dir) = hoist_testkit::conformance_dir("containerd-platforms") else {
        return;
    };
    let mut t = Tally::default();
    parse_format(&mut t, &load(&dir, "parse-format.json"));
    normalization(&mut t, &load(&dir, "normalization.json"));
    matchers(&mut t, &load(&dir, "matchers.json"));
    println!(
        "containerd-platforms: {}/{} passed",
        t.total - t.failures.len(),
        t.total
    );
    assert!(
        t.failures.is_empty(),
        "failing cases:\n{}",
        t.failures.join("\n")
    );
}
