//! A hook's push filter, read as GitLab applies it (`app/models/hooks/active_hook_filter.rb`,
//! `app/models/ref_matcher.rb`): a blank filter or the strategy `all_branches` lets every
//! branch through; `wildcard` matches the whole name with `*` standing for any run of
//! characters (or the exact name); `regex` is an RE2 pattern that may match anywhere in the
//! name, and a pattern GitLab cannot compile lets nothing through.
//!
//! golive keeps only its conclusions ([`PushFilter`]), never the pattern: it is the customer's
//! text, read from GitLab's answer.

use crate::domain::{BranchFilterStrategy, PushFilter};

/// The branch golive's scenario run pushes to begins so (`golive-check-<8 hex digits>`).
pub const SCENARIO_BRANCH_PREFIX: &str = "golive-check-";

/// Branch names that stand for "every branch" when a filter is judged: the kinds of names
/// people and agents give branches. A filter that lets all of them through is taken as open.
const SAMPLE_BRANCHES: [&str; 8] = [
    "main",
    "master",
    "feature/login-page",
    "droid/fix-123",
    "factory-droid-5f0c8d7e",
    "golive-check-0a1b2c3d",
    "release-2026.12",
    "UPPER_case.branch",
];

/// Patterns longer than this are judged to let nothing through: matching cost grows with the
/// pattern, and a filter of real branch names is far shorter.
const MAX_PATTERN_BYTES: usize = 255;

/// A push filter as GitLab would apply it.
pub struct BranchFilter {
    strategy: BranchFilterStrategy,
    pattern: String,
}

impl BranchFilter {
    /// The filter of a hook from its listed `push_events_branch_filter` and
    /// `branch_filter_strategy`; `None` when it has none (blank, as GitLab treats it). An
    /// unknown strategy is read as `wildcard`, GitLab's default.
    pub fn from_hook(pattern: Option<&str>, strategy: Option<&str>) -> Option<BranchFilter> {
        let pattern = pattern.filter(|p| !p.trim().is_empty())?;
        let strategy = match strategy {
            Some("regex") => BranchFilterStrategy::Regex,
            Some("all_branches") => BranchFilterStrategy::AllBranches,
            _ => BranchFilterStrategy::Wildcard,
        };
        Some(BranchFilter { strategy, pattern: pattern.to_owned() })
    }

    /// Whether a push to `branch` reaches the hook.
    pub fn matches(&self, branch: &str) -> bool {
        if self.pattern.len() > MAX_PATTERN_BYTES {
            return false;
        }
        match self.strategy {
            BranchFilterStrategy::AllBranches => true,
            BranchFilterStrategy::Wildcard => {
                if self.pattern == branch {
                    return true;
                }
                if !self.pattern.contains('*') {
                    return false;
                }
                let quoted: Vec<String> = self.pattern.split('*').map(regex::escape).collect();
                compile(&format!(r"\A{}\z", quoted.join(".*?"))).is_some_and(|re| re.is_match(branch))
            }
            BranchFilterStrategy::Regex => compile(&self.pattern).is_some_and(|re| re.is_match(branch)),
        }
    }

    /// A branch for golive's scenario run that this filter lets through, when golive can make
    /// one: its usual `golive-check-<suffix>`, or, for a wildcard filter that refuses it, the
    /// filter's pattern with each `*` made the suffix.
    pub fn scenario_branch(&self, suffix: &str) -> Option<String> {
        let usual = format!("{SCENARIO_BRANCH_PREFIX}{suffix}");
        if self.matches(&usual) {
            return Some(usual);
        }
        if self.strategy == BranchFilterStrategy::Wildcard && self.pattern.contains('*') {
            let made = self.pattern.replace('*', &usual);
            // The name is checked first: it bounds what the pattern is matched against.
            if is_branch_name(&made) && self.matches(&made) {
                return Some(made);
            }
        }
        None
    }

    /// golive's conclusions, the only part it records.
    pub fn conclusions(&self) -> PushFilter {
        PushFilter {
            strategy: self.strategy,
            every_branch: SAMPLE_BRANCHES.iter().all(|b| self.matches(b)),
            scenario_branch: self.scenario_branch("0a1b2c3d").is_some(),
        }
    }
}

fn compile(pattern: &str) -> Option<regex::Regex> {
    regex::RegexBuilder::new(pattern).size_limit(1 << 20).dfa_size_limit(1 << 20).build().ok()
}

/// A name git accepts for a branch, conservatively: no spaces, no control characters, no
/// `..`, no leading `-` or `/`, no trailing `/` or `.lock`.
fn is_branch_name(name: &str) -> bool {
    (1..=200).contains(&name.len())
        && !name.starts_with(['-', '/'])
        && !name.ends_with(['/', '.'])
        && !name.ends_with(".lock")
        && !name.contains("..")
        && !name.contains("//")
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(pattern: &str, strategy: &str) -> BranchFilter {
        BranchFilter::from_hook(Some(pattern), Some(strategy)).unwrap()
    }

    #[test]
    fn blank_filters_are_no_filters() {
        assert!(BranchFilter::from_hook(None, Some("regex")).is_none());
        assert!(BranchFilter::from_hook(Some("  "), Some("wildcard")).is_none());
    }

    #[test]
    fn filters_match_as_gitlab_matches_them() {
        // (pattern, strategy, branch, matches)
        let cases = [
            ("main", "wildcard", "main", true),
            ("main", "wildcard", "main2", false),
            ("feature/*", "wildcard", "feature/login", true),
            ("feature/*", "wildcard", "xfeature/login", false),
            ("*", "wildcard", "anything/at-all", true),
            ("golive-*", "wildcard", "golive-check-1", true),
            ("a.b", "wildcard", "axb", false),
            ("^main$", "regex", "main", true),
            ("main", "regex", "not-main-branch", true),
            ("^release-", "regex", "main", false),
            (".*", "regex", "x", true),
            ("(", "regex", "(", false),
            ("main", "all_branches", "other", true),
            ("(?i)^main$", "regex", "MAIN", true),
            (r"^\p{L}+$", "regex", "ünïcode", true),
        ];
        for (pattern, strategy, branch, expected) in cases {
            assert_eq!(filter(pattern, strategy).matches(branch), expected, "{pattern} {strategy} {branch}");
        }
    }

    #[test]
    fn conclusions_say_whether_every_branch_and_the_scenario_branch_pass() {
        let open = filter("*", "wildcard").conclusions();
        assert!(open.every_branch && open.scenario_branch && open.lets_agents_through());
        let main_only = filter("main", "wildcard").conclusions();
        assert!(!main_only.every_branch && !main_only.scenario_branch);
        let features = filter("feature/*", "wildcard");
        assert!(!features.conclusions().every_branch);
        assert_eq!(features.scenario_branch("abc").as_deref(), Some("feature/golive-check-abc"));
        assert!(filter("^release-[0-9]+$", "regex").scenario_branch("abc").is_none());
        assert!(filter(".*", "regex").conclusions().every_branch);
    }
}
