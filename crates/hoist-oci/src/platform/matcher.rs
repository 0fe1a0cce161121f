//! Platform matching and preference order, as containerd/platforms: [`Matcher`] (one
//! platform, `NewMatcher`) and [`MatchComparer`] (`Only`, `OnlyStrict`, `OnlyOS`, `Ordered`,
//! `Any`, `All`), whose `less` ranks candidates, best first.
//!
//! [`MatchComparer::only`] is what picks an image for a build platform: `linux/amd64` also
//! accepts `linux/386`, `linux/arm64` accepts `linux/arm/v8`..`v5`, `linux/arm/v7` accepts
//! `v6` and `v5`, `amd64/vN` accepts lower amd64 levels, and the exact platform ranks first.
//! Behaviour is that of a Linux host (no Windows host-specific ordering).

use super::Platform;

/// A Windows `major.minor.build` version, as containerd compares them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct WindowsVersion {
    major: u8,
    minor: u8,
    build: u16,
}

const LTSC2022: u16 = 20348;
const LTSC2025: u16 = 26100;
const COMPAT_LTSC_RELEASES: [u16; 2] = [LTSC2022, LTSC2025];

impl WindowsVersion {
    fn parse(prefix: &str) -> Self {
        if prefix.matches('.').count() < 2 {
            return Self::default();
        }
        let mut it = prefix.splitn(4, '.');
        let (Some(major), Some(minor), Some(build)) = (it.next(), it.next(), it.next()) else {
            return Self::default();
        };
        match (major.parse(), minor.parse(), build.parse()) {
            (Ok(major), Ok(minor), Ok(build)) => Self {
                major,
                minor,
                build,
            },
            _ => Self::default(),
        }
    }

    fn is_empty(self) -> bool {
        self == Self::default()
    }

    /// Whether a container of version `ctr` runs on this host version.
    fn runs(self, ctr: Self) -> bool {
        if self.major != ctr.major || self.minor != ctr.minor {
            return false;
        }
        if self.build < LTSC2022 {
            return self.build == ctr.build;
        }
        let supported = COMPAT_LTSC_RELEASES
            .iter()
            .rev()
            .find(|&&r| self.build > r)
            .copied()
            .unwrap_or(LTSC2022);
        supported <= ctr.build && ctr.build <= self.build
    }

    fn matches(self, os_version: &str) -> bool {
        self.is_empty() || os_version.is_empty() || self.runs(Self::parse(os_version))
    }
}

/// Whether every feature of `wanted` (sorted) is in `have` (sorted).
fn features_subset(wanted: &[String], have: &[String]) -> bool {
    wanted.iter().all(|f| have.binary_search(f).is_ok())
}

/// containerd's `NewMatcher`: accepts platforms equal to one platform after normalisation
/// (os version compatible on Windows; candidate os features a subset of this one's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    platform: Platform,
    windows: Option<WindowsVersion>,
}

impl Matcher {
    /// A matcher for `platform`.
    pub fn new(platform: &Platform) -> Self {
        let windows =
            (platform.os == "windows").then(|| WindowsVersion::parse(&platform.os_version));
        Self {
            platform: platform.normalize(),
            windows,
        }
    }

    /// The normalised platform this matcher accepts.
    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// Whether `candidate` is accepted.
    pub fn matches(&self, candidate: &Platform) -> bool {
        let mut candidate = candidate.clone();
        if self.windows.is_some() {
            if let Some(i) = candidate.os_features.iter().position(|f| f == "win32k") {
                candidate.os_features.remove(i);
            }
        }
        let normalized = candidate.normalize();
        self.platform.os == normalized.os
            && self.platform.architecture == normalized.architecture
            && self.platform.variant == normalized.variant
            && self
                .windows
                .is_none_or(|w| w.matches(&candidate.os_version))
            && features_subset(&normalized.os_features, &self.platform.os_features)
    }
}

/// containerd's `MatchComparer`: which platforms are acceptable and which is preferred.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchComparer {
    /// Any of these, preferred in this order (`Ordered`, and what `Only`/`OnlyStrict` build).
    Ordered(Vec<Matcher>),
    /// Any of these, no preference between them (`Any`).
    Any(Vec<Matcher>),
    /// Any architecture of one os (`OnlyOS`), the best architecture match first.
    OnlyOs {
        /// The normalised platform.
        platform: Box<Platform>,
        /// Ranks architectures: the exact platform first.
        arch: Box<Matcher>,
    },
    /// Every platform, no preference (`All`).
    All,
}

impl MatchComparer {
    /// containerd's `Only`: the platform and those it can run, best first.
    pub fn only(platform: &Platform) -> Self {
        let vector = platform_vector(&platform.normalize());
        Self::Ordered(vector.iter().map(Matcher::new).collect())
    }

    /// containerd's `OnlyStrict`: the platform alone (after normalisation).
    pub fn only_strict(platform: &Platform) -> Self {
        Self::Ordered(vec![Matcher::new(&platform.normalize())])
    }

    /// containerd's `OnlyOS`: any architecture of the platform's os (same os version and
    /// features), the best architecture match first.
    pub fn only_os(platform: &Platform) -> Self {
        let normalized = platform.normalize();
        Self::OnlyOs {
            arch: Box::new(Matcher::new(&normalized)),
            platform: Box::new(normalized),
        }
    }

    /// containerd's `Ordered`: any of `platforms`, preferred in this order.
    pub fn ordered(platforms: &[Platform]) -> Self {
        Self::Ordered(platforms.iter().map(Matcher::new).collect())
    }

    /// containerd's `Any`: any of `platforms`, no preference.
    pub fn any(platforms: &[Platform]) -> Self {
        Self::Any(platforms.iter().map(Matcher::new).collect())
    }

    /// containerd's `Default`: [`MatchComparer::only`] of the host.
    pub fn host() -> Self {
        Self::only(&Platform::host())
    }

    /// Whether `candidate` is acceptable.
    pub fn matches(&self, candidate: &Platform) -> bool {
        match self {
            Self::Ordered(ms) | Self::Any(ms) => ms.iter().any(|m| m.matches(candidate)),
            Self::OnlyOs { platform, .. } => match_os(platform, candidate),
            Self::All => true,
        }
    }

    /// Whether `a` is preferred over `b`.
    pub fn less(&self, a: &Platform, b: &Platform) -> bool {
        match self {
            Self::Ordered(ms) => ordered_less(ms, a, b),
            Self::Any(ms) => any_less(ms, a, b),
            Self::OnlyOs { platform, arch } => {
                let (am, bm) = (match_os(platform, a), match_os(platform, b));
                if am && !bm {
                    return true;
                }
                if !am {
                    return false;
                }
                ordered_less(std::slice::from_ref(&**arch), a, b)
            }
            Self::All => false,
        }
    }

    /// Sorts `items` best first by the platform `platform_of` gives (a stable insertion
    /// sort, as Go's `sort.Slice` behaves on the short lists of an index).
    pub fn sort_by<T>(&self, items: &mut [T], platform_of: impl Fn(&T) -> &Platform) {
        for i in 1..items.len() {
            let mut j = i;
            while j > 0 && self.less(platform_of(&items[j]), platform_of(&items[j - 1])) {
                items.swap(j, j - 1);
                j -= 1;
            }
        }
    }

    /// The best acceptable platform among `candidates`, by index.
    pub fn best(&self, candidates: &[Platform]) -> Option<usize> {
        let mut matching: Vec<(usize, &Platform)> = candidates
            .iter()
            .enumerate()
            .filter(|(_, p)| self.matches(p))
            .collect();
        self.sort_by(&mut matching, |entry| entry.1);
        matching.first().map(|entry| entry.0)
    }
}

fn match_os(platform: &Platform, candidate: &Platform) -> bool {
    let normalized = candidate.normalize();
    if platform.os != normalized.os {
        return false;
    }
    if platform.os == "windows"
        && !WindowsVersion::parse(&platform.os_version).matches(&candidate.os_version)
    {
        return false;
    }
    features_subset(&normalized.os_features, &platform.os_features)
}

fn without_features(p: &Platform) -> Platform {
    Platform {
        os_features: Vec::new(),
        ..p.clone()
    }
}

fn ordered_less(matchers: &[Matcher], a: &Platform, b: &Platform) -> bool {
    for m in matchers {
        let (am, bm) = (m.matches(a), m.matches(b));
        if am && !bm {
            return true;
        }
        if am || bm {
            if am && bm && a.os_features.len() != b.os_features.len() {
                return a.os_features.len() > b.os_features.len();
            }
            return false;
        }
    }
    if !a.os_features.is_empty() || !b.os_features.is_empty() {
        return ordered_less(matchers, &without_features(a), &without_features(b));
    }
    false
}

fn any_less(matchers: &[Matcher], a: &Platform, b: &Platform) -> bool {
    let (mut am, mut bm) = (false, false);
    for m in matchers {
        am = am || m.matches(a);
        bm = bm || m.matches(b);
        if am && bm {
            if a.os_features.len() != b.os_features.len() {
                return a.os_features.len() > b.os_features.len();
            }
            break;
        }
    }
    if !am && !bm && (!a.os_features.is_empty() || !b.os_features.is_empty()) {
        return any_less(matchers, &without_features(a), &without_features(b));
    }
    am && !bm
}

fn with_variant(p: &Platform, architecture: &str, variant: &str) -> Platform {
    Platform {
        architecture: architecture.to_owned(),
        variant: variant.to_owned(),
        features: Vec::new(),
        ..p.clone()
    }
}

/// The arm64 variants each arm64 variant can run: majors, and for each the highest minor.
fn arm64_versions(variant: &str) -> Option<(&'static [u32], &'static [u32])> {
    Some(match variant {
        "v8" | "v8.0" => (&[8], &[0]),
        "v8.1" => (&[8], &[1]),
        "v8.2" => (&[8], &[2]),
        "v8.3" => (&[8], &[3]),
        "v8.4" => (&[8], &[4]),
        "v8.5" => (&[8], &[5]),
        "v8.6" => (&[8], &[6]),
        "v8.7" => (&[8], &[7]),
        "v8.8" => (&[8], &[8]),
        "v8.9" => (&[8], &[9]),
        "v9" | "v9.0" => (&[9, 8], &[0, 5]),
        "v9.1" => (&[9, 8], &[1, 6]),
        "v9.2" => (&[9, 8], &[2, 7]),
        "v9.3" => (&[9, 8], &[3, 8]),
        "v9.4" => (&[9, 8], &[4, 9]),
        "v9.5" => (&[9, 8], &[5, 9]),
        "v9.6" => (&[9, 8], &[6, 9]),
        "v9.7" => (&[9, 8], &[7, 9]),
        _ => return None,
    })
}

/// containerd's `platformVector`: the platform and the ones it can run, best first.
fn platform_vector(platform: &Platform) -> Vec<Platform> {
    let version = |v: &str| v.strip_prefix('v').unwrap_or(v).parse::<u32>().ok();
    let mut vector = vec![platform.clone()];
    match platform.architecture.as_str() {
        "amd64" => {
            if let Some(level) = version(&platform.variant).filter(|&l| l > 1) {
                for l in (1..level).rev() {
                    vector.push(with_variant(platform, "amd64", &format!("v{l}")));
                }
            }
            vector.push(with_variant(platform, "386", ""));
        }
        "arm" => {
            if let Some(level) = version(&platform.variant).filter(|&l| l > 5) {
                for l in (5..level).rev() {
                    vector.push(with_variant(platform, "arm", &format!("v{l}")));
                }
            }
        }
        "arm64" => {
            let mut variant = if platform.variant.is_empty() {
                "v8".to_owned()
            } else {
                platform.variant.clone()
            };
            vector.clear();
            if let Some((majors, minors)) = arm64_versions(&variant) {
                for (major, &top) in majors.iter().zip(minors) {
                    for minor in (0..=top).rev() {
                        let v = if minor == 0 {
                            format!("v{major}")
                        } else {
                            format!("v{major}.{minor}")
                        };
                        vector.push(with_variant(platform, "arm64", &v));
                    }
                }
                if variant.starts_with("v8") || variant.starts_with("v9") {
                    variant = "v8".into();
                }
                vector.extend(platform_vector(&with_variant(platform, "arm", &variant)));
            }
        }
        _ => {}
    }
    vector
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Platform {
        Platform::parse_with_host(spec, &Platform::new("linux", "amd64")).unwrap()
    }

    #[test]
    fn only_picks_exact_platform_first_from_an_index() {
        let candidates = ["linux/386", "linux/arm64", "linux/amd64", "windows/amd64"].map(parse);
        let m = MatchComparer::only(&parse("linux/amd64"));
        assert_eq!(m.best(&candidates), Some(2));
        let m = MatchComparer::only(&parse("linux/arm64/v8"));
        assert_eq!(m.best(&candidates), Some(1));
        let m = MatchComparer::only(&parse("linux/s390x"));
        assert_eq!(m.best(&candidates), None);
    }
}
